"""Pytest fixtures shared by every Orchard package's tests.

- ``free_port()``: a function returning a TCP port free on 127.0.0.1 right now.
- ``free_port`` fixture: one such port, for a test that starts its own server.
- ``mlflow_server`` fixture (session): a real ``mlflow server`` on loopback, SQLite backend
  and a local artifact folder in a temporary directory; yields an :class:`MlflowServer`
  whose ``url`` is the tracking URI. Skipped when full MLflow is not installed, except under
  ``CI=true``, where that is a failure.
- ``postgres_server`` fixture (session): a real PostgreSQL server; ``database_url``: a fresh
  database per test, parametrized over SQLite and PostgreSQL (for services with a database).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings as hypothesis_settings

# No per-example deadline: timing is for benchmarks, and a busy 2-core machine is slow.
# CI replays the same examples every run (a red CI must be reproducible); locally Hypothesis
# explores new ones, which is how it finds the bugs CI then keeps out.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", deadline=None, print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

_SERVER_START_TIMEOUT_S = 180.0  # mlflow server imports take ~15 s, far more on a busy machine
_SERVER_STOP_TIMEOUT_S = 15.0
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 when this function checked."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="free_port")
def _free_port_fixture() -> int:
    """A TCP port free on 127.0.0.1 (bind to it promptly: nothing reserves it)."""
    return free_port()


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: ``url`` is its tracking URI."""

    url: str
    port: int
    root: Path
    log_path: Path
    backend_store_uri: str


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """Start a real MLflow tracking server for the whole session and stop it afterwards.

    One worker, no job runner; state in a fresh temporary directory. Teardown terminates the
    server's whole process group, so no worker outlives the session.
    """
    executable = _mlflow_executable()
    root = tmp_path_factory.mktemp("mlflow-server")
    failures: list[str] = []
    for attempt in range(_START_ATTEMPTS):
        port = free_port()
        log_path = root / f"server-{attempt}.log"
        backend = f"sqlite:///{root / 'mlflow.db'}"
        process = _start(executable, root, port, backend, log_path)
        try:
            if _wait_until_healthy(process, port):
                yield MlflowServer(f"http://127.0.0.1:{port}", port, root, log_path, backend)
                return
        finally:
            _stop(process)
        failures.append(f"attempt {attempt + 1} (port {port}): {_tail(log_path)}")
    pytest.fail("mlflow server did not become healthy:\n" + "\n".join(failures))


def _mlflow_executable() -> Path:
    # The server is an outside program to the code under test: ORCHARD_TEST_MLFLOW points at
    # one from another environment, so a package's tests can run with only its own deps.
    override = os.environ.get("ORCHARD_TEST_MLFLOW")
    if override:
        if not Path(override).is_file():
            _skip_or_fail(f"ORCHARD_TEST_MLFLOW={override} is not a file")
        return Path(override)
    executable = Path(sys.executable).parent / "mlflow"
    try:
        # The server needs full MLflow; mlflow-skinny installs the same command without it.
        importlib.metadata.distribution("mlflow")
    except importlib.metadata.PackageNotFoundError:
        _skip_or_fail("the full 'mlflow' package (with `mlflow server`) is not installed")
    if not executable.is_file():
        _skip_or_fail(f"no mlflow executable at {executable}")
    return executable


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so this is an error rather than a skip")
    pytest.skip(reason)


def _start(
    executable: Path, root: Path, port: int, backend: str, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        # The job runner spawns huey consumers (and /dev/shm folders) a test server never uses.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(executable),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    with log_path.open("wb") as log:
        # A new session makes the server the leader of its own process group, so teardown can
        # signal it and every worker it spawned at once. cwd=root keeps stray files out of
        # the checkout.
        return subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until_healthy(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
    url = f"http://127.0.0.1:{port}/health"
    # Loopback never goes through an HTTP proxy, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)  # polling interval, not a wait for readiness
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    group = process.pid  # start_new_session: process group id == leader's pid
    _signal_group(group, signal.SIGTERM)
    try:
        process.wait(timeout=_SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        process.wait()
    # Workers can outlive the leader for a moment; whatever is left after the grace period
    # (or ignores SIGTERM) is killed. Bounded, since zombies awaiting a reaper look alive.
    deadline = time.monotonic() + _SERVER_STOP_TIMEOUT_S
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


# --- PostgreSQL ---

_PG_START_TIMEOUT_S = 60.0


def _postgres_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: on PATH, or Debian's versioned one."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "postgres").exists():
            return Path(folder)
    return None


@contextlib.contextmanager
def _running_postgres() -> Iterator[str]:
    """Start a server; yield the SQLAlchemy URL of its ``postgres`` database."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        _skip_or_fail(
            "PostgreSQL's initdb and postgres are not installed (apt-get install postgresql)"
        )
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="orchard-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _skip_or_fail("running as root, and no 'postgres' user to run PostgreSQL as")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    port = free_port()
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_accepting(port, server, root / "server.log")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_accepting(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + _PG_START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited at start-up:\n{log.read_text()[-2000:]}")
        try:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres"):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session (``initdb`` + ``postgres`` in a temporary
    folder, free loopback port, trust auth, fsync off; as root it runs as the ``postgres``
    user); yields the SQLAlchemy URL of its ``postgres`` database. Missing binaries skip,
    except under ``CI=true``, where that is a failure."""
    with _running_postgres() as url:
        yield url


_databases = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each supported kind (a SQLite file; a new PostgreSQL
    database on the session's server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    import psycopg

    server: str = request.getfixturevalue("postgres_server")
    name = f"test_{next(_databases)}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"
