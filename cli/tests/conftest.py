"""Fixtures for the CLI tests: free ports, fake services, a supervisor that always cleans up."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from orchard_cli.supervisor import ProcessSpec, Supervisor

FAKE_SERVICE = Path(__file__).with_name("fake_service.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port_factory() -> Callable[[], int]:
    """Returns a function that gives a TCP port free on 127.0.0.1 (distinct per call)."""
    given: set[int] = set()

    def factory() -> int:
        while (port := _free_port()) in given:
            pass
        given.add(port)
        return port

    return factory


class LineRecorder:
    """A LineSink that keeps every (name, line) it receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []

    def __call__(self, name: str, line: str, /) -> None:
        with self._lock:
            self._lines.append((name, line))

    def of(self, name: str) -> list[str]:
        with self._lock:
            return [line for n, line in self._lines if n == name]


@pytest.fixture
def lines() -> LineRecorder:
    return LineRecorder()


@pytest.fixture
def supervisor(lines: LineRecorder) -> Iterator[Supervisor]:
    """A supervisor whose processes are all stopped at teardown, whatever the test did."""
    sup = Supervisor(lines)
    yield sup
    sup.stop_all()
    sup.close()


FakeSpec = Callable[..., ProcessSpec]


@pytest.fixture
def fake_spec(port_factory: Callable[[], int]) -> FakeSpec:
    """Builds a ProcessSpec running fake_service.py; ``serve=False`` runs it without HTTP."""

    def build(
        name: str,
        *args: str,
        serve: bool = True,
        ready_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        capture_stdout: bool = False,
    ) -> ProcessSpec:
        argv = [sys.executable, str(FAKE_SERVICE), "--name", name, *args]
        ready_url = None
        if serve:
            port = port_factory()
            argv += ["--port", str(port)]
            ready_url = f"http://127.0.0.1:{port}/ready"
        return ProcessSpec(
            name=name,
            argv=argv,
            ready_url=ready_url,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            capture_stdout=capture_stdout,
        )

    return build


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(0.02)
    return True


@pytest.fixture
def poll() -> Callable[..., bool]:
    """``poll(condition, timeout=10.0)``: wait with a deadline, never a fixed sleep."""
    return wait_until


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (psutil handles keep their identity)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (a zombie has exited, so it does not count)."""
    result = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                result.append(proc)
        except psutil.NoSuchProcess:
            pass
    return result


@pytest.fixture
def tree() -> Callable[[int], list[psutil.Process]]:
    """``tree(pid)``: the process and its descendants, for orphan checks."""
    return process_tree


@pytest.fixture
def still_alive() -> Callable[[list[psutil.Process]], list[psutil.Process]]:
    """``still_alive(procs)``: which recorded processes are still running."""
    return alive
