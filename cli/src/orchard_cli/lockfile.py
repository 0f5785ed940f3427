"""One running platform per data folder: an flock'ed lock file plus a state file.

The kernel drops an flock when its holder dies however it dies, so a lock file left behind by
a killed run never blocks the next one. The state file (pid, URLs) is informational only: it
lets a refused second ``orchard up`` and ``orchard status`` say where the platform is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "LOCK_FILE",
    "STATE_FILE",
    "AlreadyRunningError",
    "InstanceLock",
    "InstanceState",
    "ServiceState",
    "is_running",
    "read_state",
]

LOCK_FILE = "orchard.lock"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class ServiceState:
    """Where one service of a running platform answers."""

    url: str
    health_url: str
    pid: int | None = None


@dataclass(frozen=True)
class InstanceState:
    """What a running ``orchard up`` publishes about itself."""

    pid: int
    status: str  # "starting" or "running"
    data_dir: str
    services: dict[str, ServiceState] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialize to JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ValueError: The text is not a state document.
        """
        try:
            raw: dict[str, Any] = json.loads(text)
            services = {k: ServiceState(**v) for k, v in raw.get("services", {}).items()}
            return cls(
                pid=int(raw["pid"]),
                status=str(raw["status"]),
                data_dir=str(raw["data_dir"]),
                services=services,
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"not an Orchard state file: {e}") from e


class AlreadyRunningError(Exception):
    """Another ``orchard up`` holds the data folder's lock."""

    def __init__(self, data_dir: Path, state: InstanceState | None) -> None:
        if state is not None:
            pid = f"pid {state.pid}"
            gateway = state.services.get("gateway")
            where = f" — gateway at {gateway.url}" if gateway else ""
        else:  # the other instance has not written its state yet
            pid, where = f"data folder {data_dir}", ""
        super().__init__(f"Orchard is already running ({pid}){where}")
        self.state = state


def read_state(data_dir: Path) -> InstanceState | None:
    """The state file's content, or ``None`` when missing or unreadable."""
    try:
        return InstanceState.from_json((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_running(data_dir: Path) -> bool:
    """Whether some process holds the data folder's lock right now."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock if we got it
    return False


class InstanceLock:
    """The exclusive lock on a data folder, held for the lifetime of ``orchard up``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lock_path = data_dir / LOCK_FILE
        self.state_path = data_dir / STATE_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            AlreadyRunningError: Another process holds it.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise AlreadyRunningError(self.data_dir, read_state(self.data_dir)) from None
            # The previous holder unlinks the file on release; if we locked that unlinked
            # file, a third process may already hold the new one, so start over.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def write_state(self, state: InstanceState) -> None:
        """Publish the state atomically (readers never see half a file)."""
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(state.to_json(), encoding="utf-8")
        tmp.replace(self.state_path)

    def release(self) -> None:
        """Remove the state and lock files and drop the lock; does nothing if not held."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.lock_path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
