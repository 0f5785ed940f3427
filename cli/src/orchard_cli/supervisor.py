"""Start, watch and stop local processes, each in a process group of its own.

A :class:`ProcessSpec` says what to run and how to tell that it is ready; a :class:`Supervisor`
starts specs in order, pumps every output line of every child to one :class:`LineSink`, waits
for readiness with a deadline, notices a child that exits on its own, and stops everything in
reverse order: SIGTERM to the whole process group, a grace period, then SIGKILL.

Errors::

    SupervisorError
    ├── ProcessStartError    the executable could not be started
    ├── ProcessExitedError   a child exited before it was ready, or a job failed
    ├── NotReadyError        the ready URL did not answer 200 before the deadline
    └── StopRequested        a stop (signal) arrived while waiting
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

import httpx
import psutil

__all__ = [
    "LineSink",
    "ManagedProcess",
    "NotReadyError",
    "Outcome",
    "ProcessExitedError",
    "ProcessSpec",
    "ProcessStartError",
    "StopRequested",
    "Supervisor",
    "SupervisorError",
    "describe_returncode",
]


class SupervisorError(Exception):
    """Base class of everything the supervisor raises."""


class ProcessStartError(SupervisorError):
    """The child's executable could not be started at all."""


class ProcessExitedError(SupervisorError):
    """A child exited before it became ready, or a job exited non-zero."""

    def __init__(self, name: str, returncode: int) -> None:
        super().__init__(f"{name} {describe_returncode(returncode)}")
        self.name = name
        self.returncode = returncode


class NotReadyError(SupervisorError):
    """A child did not answer its ready URL with 200 before its deadline."""


class StopRequested(SupervisorError):
    """A stop was requested (SIGINT/SIGTERM) while the supervisor was waiting."""


class LineSink(Protocol):
    """Receives each output line of each child, without its line ending."""

    def __call__(self, name: str, line: str, /) -> None: ...


@dataclass(frozen=True)
class ProcessSpec:
    """What to run, and how to know it is ready.

    Attributes:
        name: Short name, used as the log prefix and in messages.
        argv: The command line.
        env: Variables set on top of the supervisor's own environment.
        ready_url: Polled until it answers 200; ``None`` means ready as soon as started.
        ready_timeout: Seconds to wait for ``ready_url`` (for a job: for it to finish).
        stop_timeout: Seconds between SIGTERM and SIGKILL when stopping.
        cwd: Working directory, or ``None`` for the supervisor's own.
        capture_stdout: Keep stdout lines (see :attr:`ManagedProcess.stdout_lines`) instead of
            passing them to the sink; for jobs whose stdout is machine-readable.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0
    cwd: Path | None = None
    capture_stdout: bool = False


class Outcome(Enum):
    """Why :meth:`Supervisor.supervise` returned."""

    STOP_REQUESTED = "stop requested"
    CHILD_EXITED = "child exited"


def describe_returncode(returncode: int) -> str:
    """Say how a process ended, in words (``exited with code 3``, ``was killed by SIGKILL``)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _is_alive(proc: psutil.Process) -> bool:
    # A zombie has exited; only its parent's wait() is missing. is_running() also guards
    # against a recycled pid by comparing creation times.
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class ManagedProcess:
    """One child process in its own session (so its process group id is its pid)."""

    def __init__(self, spec: ProcessSpec, sink: LineSink, on_exit: Callable[[], None]) -> None:
        self.spec = spec
        self._sink = sink
        self._on_exit = on_exit
        self._popen: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stdout_lines: deque[str] = deque(maxlen=1000)
        # Descendants seen so far, so that one that leaves the group (setsid) is still stopped.
        self._known: dict[int, psutil.Process] = {}
        self.exit_expected = False

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.spec.name

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited, else ``None``."""
        return None if self._popen is None else self._popen.poll()

    @property
    def stdout_lines(self) -> list[str]:
        """Captured stdout lines (only with ``capture_stdout``), at most the last 1000."""
        return list(self._stdout_lines)

    def start(self) -> None:
        """Start the child with its output pumped to the sink by background threads."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.spec.env}
        try:
            self._popen = subprocess.Popen(
                list(self.spec.argv),
                env=env,
                cwd=self.spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise ProcessStartError(f"could not start {self.name}: {e}") from e
        assert self._popen.stdout is not None
        assert self._popen.stderr is not None
        self._threads = [
            self._thread(self._pump, self._popen.stdout, self.spec.capture_stdout),
            self._thread(self._pump, self._popen.stderr, False),
            self._thread(self._wait),
        ]
        for thread in self._threads:
            thread.start()

    def _thread(self, target: Callable[..., None], *args: object) -> threading.Thread:
        return threading.Thread(target=target, args=args, name=f"{self.name}-io", daemon=True)

    def _pump(self, pipe: IO[bytes], capture: bool) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if capture:
                    self._stdout_lines.append(line)
                    continue
                try:
                    self._sink(self.name, line)
                except OSError:
                    # Our own output is gone (terminal closed, pipe broken); keep draining
                    # the pipe regardless, or the child would block on a full pipe.
                    continue

    def _wait(self) -> None:
        assert self._popen is not None
        self._popen.wait()
        self._on_exit()

    def descendants(self) -> list[psutil.Process]:
        """The live processes this child started, at any depth, including ones it disowned."""
        self._remember_children()
        return [p for p in self._known.values() if _is_alive(p)]

    def _remember_children(self) -> None:
        if self._popen is None or self._popen.poll() is not None:
            return
        try:
            children = psutil.Process(self._popen.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            self._known.setdefault(child.pid, child)

    def _group_members(self) -> list[psutil.Process]:
        pgid = self.pid
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        members = []
        for pid in psutil.pids():
            with contextlib.suppress(OSError, psutil.Error):
                if os.getpgid(pid) == pgid:
                    members.append(psutil.Process(pid))
        return [p for p in members if _is_alive(p)]

    def _alive(self) -> list[psutil.Process]:
        alive = {p.pid: p for p in self._group_members()}
        for p in self.descendants():
            alive.setdefault(p.pid, p)
        return list(alive.values())

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
        # Only those that left the group: a second SIGTERM means "hurry" to some servers.
        for proc in self.descendants():
            with contextlib.suppress(OSError, psutil.Error):
                if os.getpgid(proc.pid) != self.pid:
                    proc.send_signal(signum)

    def stop(
        self,
        pause: Callable[[float], None],
        forced: Callable[[], bool] = lambda: False,
        timeout: float | None = None,
    ) -> int | None:
        """Stop the child and everything it started; SIGKILL whatever outlives the grace period.

        Args:
            pause: Waits between checks; returns early when something happens.
            forced: Says whether to give up on the grace period now (a second Ctrl-C).
            timeout: Grace period in seconds; defaults to the spec's ``stop_timeout``.

        Returns:
            The child's exit status, or ``None`` if it was never started.
        """
        if self._popen is None:
            return None
        self.exit_expected = True
        self._remember_children()
        if self._alive():
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + (self.spec.stop_timeout if timeout is None else timeout)
            while self._alive():
                if forced() or time.monotonic() >= deadline:
                    self._signal(signal.SIGKILL)
                    break
                pause(0.05)
            # SIGKILL cannot be ignored; this only waits for the kernel to finish the job.
            kill_deadline = time.monotonic() + 5.0
            while self._alive() and time.monotonic() < kill_deadline:
                pause(0.02)
        returncode = self._popen.wait()
        for thread in self._threads:
            # Output still buffered in the pipes is delivered before we return.
            thread.join(timeout=2.0)
        return returncode

    def wait_ready(
        self,
        client: httpx.Client,
        pause: Callable[[float], None],
        stop_requested: Callable[[], bool],
    ) -> None:
        """Poll the ready URL until it answers 200.

        Raises:
            ProcessExitedError: The child exited first.
            NotReadyError: The deadline passed.
            StopRequested: A stop was requested meanwhile.
        """
        url = self.spec.ready_url
        if url is None:
            return
        deadline = time.monotonic() + self.spec.ready_timeout
        interval = 0.05
        while True:
            if stop_requested():
                raise StopRequested(f"stop requested while waiting for {self.name}")
            returncode = self.returncode
            if returncode is not None:
                raise ProcessExitedError(self.name, returncode)
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            if time.monotonic() >= deadline:
                raise NotReadyError(
                    f"{self.name} was not ready at {url} within {self.spec.ready_timeout:g} s"
                )
            pause(interval)
            interval = min(interval * 2, 0.25)


class Supervisor:
    """Starts processes in order, watches them, and stops them in reverse order.

    Use :meth:`trap_signals` around the whole lifetime so that SIGINT and SIGTERM turn into a
    clean stop (a second signal skips the grace period).
    """

    def __init__(self, sink: LineSink, client: httpx.Client | None = None) -> None:
        self._sink = sink
        self._client = client or httpx.Client(timeout=2.0, trust_env=False)
        self._processes: list[ManagedProcess] = []
        # Wake-ups for waits: a child exited, or a signal arrived. SimpleQueue.put is
        # reentrant, so a signal handler may call it whatever the main thread was doing.
        self._wakeups: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop_requested = False
        self._force = False
        self.stop_signal: signal.Signals | None = None

    @property
    def processes(self) -> list[ManagedProcess]:
        """Processes started so far, in start order."""
        return list(self._processes)

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` has been called."""
        return self._stop_requested

    def _pause(self, seconds: float) -> None:
        with contextlib.suppress(queue.Empty):
            self._wakeups.get(timeout=seconds)

    def _launch(self, spec: ProcessSpec) -> ManagedProcess:
        if self._stop_requested:
            raise StopRequested(f"stop requested before {spec.name} started")
        process = ManagedProcess(spec, self._sink, lambda: self._wakeups.put("exit"))
        process.start()
        self._processes.append(process)
        return process

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        """Start a long-running process and wait until it is ready (see :class:`ProcessSpec`)."""
        process = self._launch(spec)
        process.wait_ready(self._client, self._pause, lambda: self._stop_requested)
        return process

    def run_job(self, spec: ProcessSpec) -> ManagedProcess:
        """Run a process to completion, within ``spec.ready_timeout`` seconds.

        Raises:
            ProcessExitedError: It exited non-zero.
            NotReadyError: It did not finish in time (it is stopped).
            StopRequested: A stop was requested meanwhile (it is stopped).
        """
        process = self._launch(spec)
        deadline = time.monotonic() + spec.ready_timeout
        while (returncode := process.returncode) is None:
            if self._stop_requested or time.monotonic() >= deadline:
                process.stop(self._pause, lambda: self._force)
                if self._stop_requested:
                    raise StopRequested(f"stop requested while {spec.name} was running")
                raise NotReadyError(f"{spec.name} did not finish within {spec.ready_timeout:g} s")
            self._pause(0.5)
        # Whatever it left behind in its group goes now; its output is flushed.
        process.stop(self._pause, lambda: self._force)
        if returncode != 0:
            raise ProcessExitedError(spec.name, returncode)
        return process

    def supervise(self) -> tuple[Outcome, ManagedProcess | None]:
        """Block until a stop is requested or a child exits on its own.

        Returns:
            The outcome, and for ``CHILD_EXITED`` the process that exited.
        """
        while True:
            if self._stop_requested:
                return Outcome.STOP_REQUESTED, None
            for process in self._processes:
                if not process.exit_expected and process.returncode is not None:
                    process.exit_expected = True
                    return Outcome.CHILD_EXITED, process
            self._pause(1.0)

    def request_stop(self, signum: signal.Signals | None = None) -> None:
        """Ask for a clean stop; asking again skips the grace period. Safe in signal handlers."""
        if self._stop_requested:
            self._force = True
        else:
            self._stop_requested = True
            self.stop_signal = signum
        self._wakeups.put("stop")

    def stop_all(self) -> None:
        """Stop every process, last started first, each with its group and descendants."""
        self._stop_requested = True
        for process in reversed(self._processes):
            process.stop(self._pause, lambda: self._force)

    @contextlib.contextmanager
    def trap_signals(self) -> Iterator[None]:
        """Turn SIGINT, SIGTERM and SIGHUP into :meth:`request_stop` while the block runs.

        Children live in sessions of their own, so a closed terminal (SIGHUP) or a Ctrl-C
        reaches only the supervisor, which then stops them in order.
        """

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum))

        trapped = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, handler) for s in trapped}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def close(self) -> None:
        """Close the HTTP client used for readiness probes."""
        self._client.close()
