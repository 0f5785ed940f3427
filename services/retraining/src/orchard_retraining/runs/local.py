"""Training as a subprocess of the service: the ``local`` :class:`PipelineBackend`.

Each run is one process in its own process group (so cancelling it stops whatever it spawned
too), writing stdout to ``<runs_dir>/<run_id>.out`` and stderr to ``<runs_dir>/<run_id>.log``.
Blocking, like every backend: the runner calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from orchard_retraining.k8s.protocols import RunState, RunStatus

__all__ = ["RESTARTED", "LocalPipelineBackend", "last_json_object", "tail"]

RESTARTED: Final = "the retraining service restarted during the run"
_PREFIX: Final = "local:"
_RESULT_BYTES: Final = 4 * 1024 * 1024


def tail(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all of it for ``None``)."""
    if lines is None:
        return text
    if lines <= 0:
        return ""
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (the training step's result)."""
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if not stripped.startswith("{"):
            continue
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


class LocalPipelineBackend:
    """Runs ``command + args`` as a local process; the handle is ``local:<run_id>``."""

    def __init__(
        self,
        command: Sequence[str],
        runs_dir: Path,
        *,
        tracking_uri: str | None = None,
        env: Mapping[str, str] | None = None,
        kill_grace_s: float = 5.0,
    ) -> None:
        if not command:
            raise ValueError("the pipeline command is empty")
        self._command = list(command)
        self._runs_dir = runs_dir
        self._env = dict(env or {})
        if tracking_uri:
            self._env["MLFLOW_TRACKING_URI"] = tracking_uri
        self._kill_grace_s = kill_grace_s
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def _paths(self, handle: str) -> tuple[Path, Path]:
        run_id = handle.removeprefix(_PREFIX)
        return self._runs_dir / f"{run_id}.out", self._runs_dir / f"{run_id}.log"

    def submit(
        self,
        *,
        model: str,
        run_id: str,
        trigger_id: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start the process (once per ``run_id``) with ``env`` added; return its handle."""
        handle = f"{_PREFIX}{run_id}"
        with self._lock:
            if handle in self._processes:
                return handle
            self._runs_dir.mkdir(parents=True, exist_ok=True)
            out_path, log_path = self._paths(handle)
            # The service's own TRACEPARENT (if any) is not the run's: the run's wins.
            environ = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env, **(env or {})}
            with out_path.open("wb") as out, log_path.open("wb") as log:
                # A new session: the run leads its own process group, so cancel reaches all
                # of it, and a Ctrl-C meant for the service does not kill training.
                self._processes[handle] = subprocess.Popen(
                    [*self._command, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=log,
                    env=environ,
                    start_new_session=True,
                )
        return handle

    def status(self, handle: str) -> RunStatus:
        """Running, succeeded (exit 0), or failed with the last line the step wrote."""
        process = self._processes.get(handle)
        if process is None:
            return RunStatus(RunState.FAILED, RESTARTED)
        code = process.poll()
        if code is None:
            return RunStatus(RunState.RUNNING)
        if code == 0:
            return RunStatus(RunState.SUCCEEDED)
        if code < 0:
            with contextlib.suppress(ValueError):
                return RunStatus(RunState.FAILED, f"killed by {signal.Signals(-code).name}")
        last = tail(self.logs(handle), 1).strip()
        detail = f"exited with code {code}" + (f": {last}" if last else "")
        return RunStatus(RunState.FAILED, detail)

    def logs(self, handle: str, *, tail_lines: int | None = None) -> str:
        """The run's stderr (progress and human lines) so far."""
        # A line is rarely past 1 KiB: a tail needs only the file's end.
        limit = None if tail_lines is None else max(64 * 1024, tail_lines * 1024)
        return tail(_read(self._paths(handle)[1], limit), tail_lines)

    def result(self, handle: str) -> dict[str, Any] | None:
        """The step's result: the last JSON object it printed on stdout."""
        return last_json_object(_read(self._paths(handle)[0], _RESULT_BYTES))

    def cancel(self, handle: str) -> None:
        """SIGTERM the run's process group, SIGKILL it after the grace period."""
        process = self._processes.get(handle)
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self._kill_grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        # Children that ignored SIGTERM while their leader exited go too.
        _signal_group(process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop every run still going (the service is shutting down)."""
        for handle in list(self._processes):
            self.cancel(handle)


def _read(path: Path, last_bytes: int | None = None) -> str:
    """The file's text, or only its end (a long run's log need not be read whole)."""
    try:
        with path.open("rb") as file:
            if last_bytes is not None:
                file.seek(max(0, path.stat().st_size - last_bytes))
            return file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
