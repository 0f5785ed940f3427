"""The servers under test as child processes: started, polled until ready, asked, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["RunningServer", "ServerSpec", "busy_cpu_seconds", "free_port"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (all cores together)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / _CLOCK_TICKS


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: its name in the results, command line and extra environment.

    ``{port}`` in ``command`` or in an ``env`` value is replaced by the port it is given.
    """

    name: str
    description: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


class RunningServer:
    """One server process in its own process group; a context manager that stops it."""

    def __init__(self, spec: ServerSpec, port: int, log_path: Path) -> None:
        self.spec = spec
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        # "{port}" in the command or an environment value stands for the port given here.
        command = [part.replace("{port}", str(port)) for part in spec.command]
        env = {k: v.replace("{port}", str(port)) for k, v in spec.env.items()}
        self._process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stop() reaches any child it starts
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self, models: list[str], timeout_s: float = 180.0) -> None:
        """Poll the OIP v2 readiness endpoints until the server and every model answer 200.

        Raises:
            RuntimeError: the process exited, or readiness did not come within ``timeout_s``.
        """
        paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in models)]
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.name} exited with status {self._process.returncode} before it "
                    f"was ready; its log ({self._log_path}) ends:\n{self.log_tail()}"
                )
            if all(self._status(path) == 200 for path in paths):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.spec.name} not ready after {timeout_s:.0f} s; its log "
                    f"({self._log_path}) ends:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def _status(self, path: str) -> int:
        try:
            # S310: base_url is always http://127.0.0.1:<port>, built in __init__.
            with urllib.request.urlopen(self.base_url + path, timeout=5) as response:  # noqa: S310
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def infer(self, model: str, body: bytes) -> dict[str, Any]:
        """POST one OIP v2 request and return the decoded JSON answer."""
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.base_url}/v2/models/{model}/infer",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def wait_idle(self, threshold_cores: float = 0.05, timeout_s: float = 60.0) -> float:
        """Wait until the server has drained what an earlier wrk run left queued.

        When wrk stops, requests it sent are still queued in the server; measuring before they
        are done would charge them to the next run. Returns the seconds waited.
        """
        started = time.monotonic()
        window = 0.25
        while time.monotonic() - started < timeout_s:
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < threshold_cores:
                break
        return time.monotonic() - started

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self._log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._log.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
