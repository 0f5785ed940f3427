"""The real `orchard up`: MLflow, training, runtime, evaluation and gateway; then a clean stop.

Both runs share one data folder, so only the first one trains; the second checks that a
restart reuses the registered models.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

pytestmark = pytest.mark.integration

# The first run trains two models and the runtime loads them: minutes on a small machine.
_UP_DEADLINE_S = 900.0
_STOP_DEADLINE_S = 90.0
# The gateway sends prediction events in batches, at least once a second by default.
_EVENT_DEADLINE_S = 30.0
_ACCEPTED_EVENTS = re.compile(
    r'^orchard_evaluation_events_ingested_total\{outcome="accepted"\} (\S+)$', re.MULTILINE
)


@dataclass
class Platform:
    data_dir: Path
    ports: dict[str, int]
    runs: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        args = ["up", "--data-dir", str(self.data_dir)]
        for option, port in self.ports.items():
            args += [option, str(port)]
        return args

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--gateway-port']}"

    @property
    def evaluation_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--evaluation-port']}"

    @property
    def retraining_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--retraining-port']}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    ports: dict[str, int] = {}
    for option in (
        "--mlflow-port",
        "--inference-port",
        "--evaluation-port",
        "--retraining-port",
        "--gateway-port",
        # Used only where Prometheus and Alertmanager are installed (orchard up starts them).
        "--prometheus-port",
        "--alertmanager-port",
    ):
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in ports.values():
                ports[option] = port
                break
    return Platform(tmp_path_factory.mktemp("orchard-data"), ports)


def _orchard() -> list[str]:
    script = Path(sys.executable).with_name("orchard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "orchard_cli"]


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log: Path
    tree: list[psutil.Process]  # orchard up and every process under it, once ready


@pytest.fixture
def running(platform: Platform, tmp_path: Path) -> Iterator[Running]:
    """`orchard up` started and ready; whatever is left of its tree is killed at teardown."""
    log = tmp_path / "orchard-up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_orchard(), *platform.args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree = [psutil.Process(proc.pid)]
    try:
        deadline = time.monotonic() + _UP_DEADLINE_S
        while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"orchard up exited early:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"orchard up not ready:\n{_tail(log)}"
            time.sleep(0.5)  # polling interval
        tree += tree[0].children(recursive=True)
        yield Running(proc, log, tree)
    finally:
        for leftover in _alive(tree):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        proc.wait()
        platform.runs.append(log.read_text(errors="replace"))


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    result = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                result.append(p)
        except psutil.NoSuchProcess:
            pass
    return result


def _predict_with_the_printed_example(output: str) -> Any:
    match = re.search(r"curl -s -X POST (\S+) -H '[^']*' -d '([^']*)'", output)
    assert match, "no example curl printed"
    response = httpx.post(match.group(1), content=match.group(2), timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    return response.json()


def _accepted_events(evaluation_url: str) -> float:
    """What evaluation's ``/metrics`` says about accepted prediction events (0 before any)."""
    metrics = httpx.get(f"{evaluation_url}/metrics", timeout=10, trust_env=False)
    assert metrics.status_code == 200, metrics.text
    match = _ACCEPTED_EVENTS.search(metrics.text)
    return float(match.group(1)) if match else 0.0


def _wait_for_accepted_events(evaluation_url: str) -> float:
    deadline = time.monotonic() + _EVENT_DEADLINE_S
    while (accepted := _accepted_events(evaluation_url)) < 1:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)  # polling interval
    return accepted


@pytest.mark.timeout(_UP_DEADLINE_S + 300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_serves_refuses_a_second_instance_and_stops_without_orphans(
    platform: Platform,
    running: Running,
    signum: signal.Signals,
):
    proc, log, tree = running.proc, running.log, running.tree
    assert len(tree) >= 6, (
        "expected orchard up, mlflow, the runtime, evaluation, retraining, the gateway"
    )
    output = log.read_text(errors="replace")

    # Serving: the gateway is ready and the printed example gets a prediction.
    assert httpx.get(f"{platform.gateway_url}/readyz", trust_env=False).status_code == 200
    assert httpx.get(f"{platform.evaluation_url}/readyz", trust_env=False).status_code == 200
    assert platform.evaluation_url in output
    assert (platform.data_dir / "evaluation.db").is_file()
    assert _predict_with_the_printed_example(output)["outputs"]
    # ... and the gateway logs that prediction to evaluation, which stores it.
    accepted = _wait_for_accepted_events(platform.evaluation_url)
    assert accepted >= 1, f"no prediction event reached evaluation:\n{_tail(log)}"
    # The gateway routes by retraining's table: each model's champion on the runtime.
    routes = httpx.get(f"{platform.retraining_url}/v1/routes", trust_env=False).json()["models"]
    [champion] = routes["credit-risk"]["versions"]
    assert champion["role"] == "champion"
    assert champion["target_url"] == f"http://127.0.0.1:{platform.ports['--inference-port']}"
    trained_now = "First run: training" in output
    assert trained_now == (not platform.runs), "only the first run on a data folder trains"

    # A second instance on the same data folder is refused, naming the first.
    second = subprocess.run(
        [sys.executable, "-m", "orchard_cli", *platform.args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode != 0
    assert (
        f"Orchard is already running (pid {proc.pid}) — gateway at {platform.gateway_url}"
        in second.stdout + second.stderr
    )
    status = subprocess.run(
        [sys.executable, "-m", "orchard_cli", "status", "--data-dir", str(platform.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr

    proc.send_signal(signum)

    assert proc.wait(timeout=_STOP_DEADLINE_S) == 0, _tail(log)
    assert _alive(tree) == []
    assert not (platform.data_dir / "orchard.lock").exists()
    assert not (platform.data_dir / "state.json").exists()
