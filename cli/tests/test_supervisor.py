"""Supervisor behaviour with real child processes (see fake_service.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchard_cli.supervisor import (
    NotReadyError,
    Outcome,
    ProcessExitedError,
    ProcessSpec,
    ProcessStartError,
    StopRequested,
    Supervisor,
)


def test_start_returns_once_the_ready_url_answers_200(supervisor: Supervisor, fake_spec: Any):
    spec = fake_spec("svc", "--not-ready-for", "3")

    supervisor.start(spec)

    assert spec.ready_url is not None
    assert httpx.get(spec.ready_url).status_code == 200


def test_start_stops_waiting_at_the_deadline(supervisor: Supervisor, fake_spec: Any):
    spec = fake_spec("slow", "--never-ready", ready_timeout=0.5)

    started = time.monotonic()
    with pytest.raises(NotReadyError, match=r"slow was not ready at http://127\.0\.0\.1:\d+/ready"):
        supervisor.start(spec)

    assert time.monotonic() - started < 5


def test_start_reports_a_child_that_exits_before_it_is_ready(
    supervisor: Supervisor, fake_spec: Any
):
    with pytest.raises(ProcessExitedError, match="broken exited with code 3") as info:
        supervisor.start(fake_spec("broken", "--exit-code", "3"))

    assert info.value.returncode == 3


def test_start_reports_a_missing_executable(supervisor: Supervisor, tmp_path: Path):
    spec = ProcessSpec(name="ghost", argv=[str(tmp_path / "no-such-program")])

    with pytest.raises(ProcessStartError, match="could not start ghost"):
        supervisor.start(spec)


def test_every_stdout_and_stderr_line_reaches_the_sink_with_its_name(
    supervisor: Supervisor, fake_spec: Any, lines: Any, poll: Any
):
    supervisor.start(fake_spec("a", "--stdout", "one", "--stderr", "two"))
    supervisor.start(fake_spec("b", "--stdout", "three", serve=False))

    assert poll(lambda: {"one", "two"} <= set(lines.of("a")) and "three" in lines.of("b"))
    assert "three" not in lines.of("a")


def test_stop_all_stops_in_reverse_start_order(
    supervisor: Supervisor, fake_spec: Any, tmp_path: Path
):
    record = tmp_path / "terminated"
    for name in ("first", "second", "third"):
        supervisor.start(fake_spec(name, "--on-term", str(record)))

    supervisor.stop_all()

    assert record.read_text().split() == ["third", "second", "first"]
    assert all(p.returncode == 0 for p in supervisor.processes)


def test_a_child_that_ignores_sigterm_gets_sigkill_after_the_grace_period(
    supervisor: Supervisor, fake_spec: Any
):
    process = supervisor.start(fake_spec("stubborn", "--ignore-sigterm", stop_timeout=0.3))

    started = time.monotonic()
    supervisor.stop_all()

    assert process.returncode == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 5


@pytest.mark.parametrize(
    "grandchild_args",
    [
        pytest.param(["--grandchild"], id="grandchild"),
        pytest.param(["--grandchild", "--grandchild-ignores-sigterm"], id="ignores-sigterm"),
        pytest.param(["--grandchild", "--grandchild-setsid"], id="left-the-group"),
    ],
)
def test_stopping_leaves_no_process_behind(
    supervisor: Supervisor,
    fake_spec: Any,
    tree: Any,
    still_alive: Any,
    poll: Any,
    grandchild_args: list[str],
):
    process = supervisor.start(fake_spec("parent", *grandchild_args, stop_timeout=0.5))
    assert poll(lambda: len(tree(process.pid)) == 2), "the grandchild did not start"
    recorded = tree(process.pid)

    supervisor.stop_all()

    assert still_alive(recorded) == []


def test_supervise_reports_a_child_exiting_on_its_own_and_the_rest_can_be_stopped(
    supervisor: Supervisor, fake_spec: Any, tree: Any, still_alive: Any
):
    steady = supervisor.start(fake_spec("steady", "--grandchild"))
    flaky_spec = fake_spec("flaky")
    flaky = supervisor.start(flaky_spec)
    recorded = tree(steady.pid)
    assert flaky_spec.ready_url is not None
    httpx.get(flaky_spec.ready_url.replace("/ready", "/quit?code=4"))

    outcome, exited = supervisor.supervise()
    supervisor.stop_all()

    assert (outcome, exited) == (Outcome.CHILD_EXITED, flaky)
    assert flaky.returncode == 4
    assert still_alive(recorded) == []


def test_request_stop_from_another_thread_ends_supervise(supervisor: Supervisor, fake_spec: Any):
    supervisor.start(fake_spec("svc", serve=False))

    threading.Thread(target=supervisor.request_stop).start()

    assert supervisor.supervise() == (Outcome.STOP_REQUESTED, None)


def test_a_stop_request_interrupts_waiting_for_readiness(supervisor: Supervisor, fake_spec: Any):
    supervisor.request_stop()

    with pytest.raises(StopRequested):
        supervisor.start(fake_spec("svc", "--never-ready"))


def test_run_job_keeps_stdout_for_the_caller_and_shows_stderr(
    supervisor: Supervisor, fake_spec: Any, lines: Any
):
    result = json.dumps({"models": []})
    spec = fake_spec(
        "job",
        "--stdout", result, "--stderr", "progress 50%", "--exit-code", "0",
        serve=False,
        capture_stdout=True,
    )  # fmt: skip

    job = supervisor.run_job(spec)

    assert job.stdout_lines == [result]
    assert lines.of("job") == ["progress 50%"]


def test_run_job_raises_when_the_job_fails(supervisor: Supervisor, fake_spec: Any):
    spec = fake_spec("job", "--exit-code", "2", serve=False)

    with pytest.raises(ProcessExitedError, match="job exited with code 2"):
        supervisor.run_job(spec)


def test_run_job_stops_a_job_that_overruns(supervisor: Supervisor, fake_spec: Any):
    spec = fake_spec("job", serve=False, ready_timeout=0.3)

    with pytest.raises(NotReadyError, match=r"job did not finish within 0\.3 s"):
        supervisor.run_job(spec)

    assert supervisor.processes[0].returncode == -signal.SIGTERM


# Runs a Supervisor the way `orchard up` does (signals trapped, supervise, stop_all), as a
# separate process so that the test can signal it.
HARNESS = """
import json, sys
from orchard_cli.supervisor import Outcome, ProcessSpec, Supervisor

sup = Supervisor(lambda name, line: None)  # only READY may reach stdout
with sup.trap_signals():
    for spec in json.loads(sys.argv[1]):
        sup.start(ProcessSpec(**spec))
    print("READY", flush=True)
    outcome, _ = sup.supervise()
    print("STOPPING", flush=True)
    sup.stop_all()
sys.exit(0 if outcome is Outcome.STOP_REQUESTED else 1)
"""


@pytest.fixture
def harness(tree: Any, still_alive: Any) -> Iterator[Callable[[list[ProcessSpec]], Any]]:
    """Starts the harness and returns once it printed READY; kills leftovers at teardown."""
    started: list[subprocess.Popen[str]] = []

    def run(specs: list[ProcessSpec]) -> subprocess.Popen[str]:
        config = [
            {
                "name": s.name,
                "argv": s.argv,
                "ready_url": s.ready_url,
                "stop_timeout": s.stop_timeout,
            }
            for s in specs
        ]
        proc = subprocess.Popen(
            [sys.executable, "-c", HARNESS, json.dumps(config)], stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                return proc
        raise AssertionError(f"harness exited before it was ready: {proc.wait()}")

    yield run
    for proc in started:
        leftovers = still_alive(tree(proc.pid)) if proc.poll() is None else []
        for leftover in leftovers:
            leftover.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_signal_stops_everything_and_exits_zero(
    harness: Any, fake_spec: Any, tree: Any, still_alive: Any, signum: signal.Signals
):
    specs = [
        fake_spec("a", "--grandchild"),
        fake_spec("b", "--grandchild", "--grandchild-ignores-sigterm", stop_timeout=0.5),
    ]
    process = harness(specs)
    recorded = tree(process.pid)

    process.send_signal(signum)

    assert process.wait(timeout=20) == 0
    assert still_alive(recorded) == []


def test_a_child_exiting_on_its_own_stops_everything_and_exits_non_zero(
    harness: Any, fake_spec: Any, tree: Any, still_alive: Any
):
    specs = [fake_spec("a", "--grandchild"), fake_spec("b")]
    process = harness(specs)
    recorded = tree(process.pid)

    assert specs[1].ready_url is not None
    httpx.get(specs[1].ready_url.replace("/ready", "/quit?code=7"))

    assert process.wait(timeout=20) == 1
    assert still_alive(recorded) == []


def test_a_second_signal_skips_the_grace_period(harness: Any, fake_spec: Any):
    process = harness([fake_spec("stubborn", "--ignore-sigterm", stop_timeout=60)])

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.stdout.readline().strip() == "STOPPING"
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started < 20
