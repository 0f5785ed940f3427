"""One platform per data folder; a dead holder's lock does not get in the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchard_cli.lockfile import (
    LOCK_FILE,
    STATE_FILE,
    AlreadyRunningError,
    InstanceLock,
    InstanceState,
    ServiceState,
    is_running,
    read_state,
)


def _state(data_dir: Path) -> InstanceState:
    gateway = ServiceState("http://127.0.0.1:8000", "http://127.0.0.1:8000/readyz", 42)
    return InstanceState(
        pid=os.getpid(), status="running", data_dir=str(data_dir), services={"gateway": gateway}
    )


def test_a_second_lock_on_the_same_folder_is_refused_with_pid_and_gateway(tmp_path: Path):
    with InstanceLock(tmp_path) as first:
        first.write_state(_state(tmp_path))

        with pytest.raises(AlreadyRunningError) as info:
            InstanceLock(tmp_path).acquire()

    assert str(info.value) == (
        f"Orchard is already running (pid {os.getpid()}) — gateway at http://127.0.0.1:8000"
    )


def test_the_refusal_names_the_folder_before_the_state_is_written(tmp_path: Path):
    with InstanceLock(tmp_path), pytest.raises(AlreadyRunningError, match=str(tmp_path)):
        InstanceLock(tmp_path).acquire()


def test_release_removes_lock_and_state_and_frees_the_folder(tmp_path: Path):
    lock = InstanceLock(tmp_path)
    lock.acquire()
    lock.write_state(_state(tmp_path))
    assert is_running(tmp_path)

    lock.release()

    assert not (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / STATE_FILE).exists()
    assert not is_running(tmp_path)
    with InstanceLock(tmp_path):
        pass


def test_a_lock_left_by_a_killed_process_is_not_in_the_way(tmp_path: Path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from orchard_cli.lockfile import InstanceLock;"
            f"InstanceLock(pathlib.Path({str(tmp_path)!r})).acquire(); print('locked', flush=True);"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    assert is_running(tmp_path)

    holder.kill()
    holder.wait()
    holder.stdout.close()
    assert holder.stdin is not None
    holder.stdin.close()

    assert (tmp_path / LOCK_FILE).exists()
    assert not is_running(tmp_path)
    with InstanceLock(tmp_path):
        pass


def test_state_round_trips_and_garbage_reads_as_none(tmp_path: Path):
    with InstanceLock(tmp_path) as lock:
        lock.write_state(_state(tmp_path))
        assert read_state(tmp_path) == _state(tmp_path)

    (tmp_path / STATE_FILE).write_text("{not json")
    assert read_state(tmp_path) is None
