"""`orchard up`'s sequence, with fake services in place of MLflow, runtime, evaluation, gateway."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from orchard_cli.lockfile import InstanceState, is_running, read_state
from orchard_cli.main import app
from orchard_cli.supervisor import ProcessSpec

runner = CliRunner()

TRAINED = {
    "models": [
        {"name": n, "version": "1", "run_id": "r", "model_uri": "u", "metrics": {"accuracy": 0.9}}
        for n in ("credit-risk", "digits")
    ]
}


@dataclass
class FakePlatform:
    """What the patched `orchard up` will launch, and what the registry will answer."""

    specs: dict[str, ProcessSpec]
    registry: list[dict[str, str | None]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # every process seen while it ran


@pytest.fixture
def fake_platform(monkeypatch: pytest.MonkeyPatch, fake_spec: Any) -> Iterator[FakePlatform]:
    platform = FakePlatform(
        specs={
            "mlflow": fake_spec("mlflow", "--grandchild"),
            "train": fake_spec(
                "train",
                *("--stdout", json.dumps(TRAINED), "--stderr", "epoch 1/1", "--exit-code", "0"),
                serve=False,
                capture_stdout=True,
            ),
            "inference": fake_spec("inference"),
            "evaluation": fake_spec("evaluation"),
            "retraining": fake_spec("retraining"),
            "gateway": fake_spec("gateway", "--stdout", "gateway started"),
        },
        registry=[{"credit-risk": "3", "digits": "1"}],
    )
    for name in platform.specs:
        monkeypatch.setattr(
            f"orchard_cli.up.{name if name != 'train' else 'training'}_spec",
            lambda cfg, name=name: platform.specs[name],
        )

    def champion_versions(client: Any, mlflow_url: str) -> dict[str, str | None]:
        # Each call gets the next answer; the last one repeats.
        return platform.registry.pop(0) if len(platform.registry) > 1 else platform.registry[0]

    monkeypatch.setattr("orchard_cli.up.champion_versions", champion_versions)
    monkeypatch.setattr("orchard_cli.up.missing_modules", list)
    yield platform
    mine = psutil.Process().children(recursive=True)
    leftovers = [p for p in mine if "fake_service.py" in " ".join(p.cmdline())]
    assert leftovers == [], "orchard up left processes behind"


def _up(tmp_path: Path, port_factory: Any) -> list[str]:
    # Fake services only: the real Prometheus and Alertmanager are for tests/e2e.
    args = ["up", "--data-dir", str(tmp_path), "--no-monitoring"]
    for option in (
        "--mlflow-port",
        "--inference-port",
        "--evaluation-port",
        "--retraining-port",
        "--gateway-port",
    ):
        args += [option, str(port_factory())]
    return args


def _stop_once_running(
    data_dir: Path,
    platform: FakePlatform,
    signum: signal.Signals,
    states: list[InstanceState] | None = None,
) -> None:
    """In a thread: when `up` says it is running, record its processes, then signal it.

    ``states``, when given, also gets the state file `up` published at that moment.
    """
    # Processes this test did not start (a session-wide MLflow server of another package's
    # tests, say) are children of pytest too: leave them out of what `up` must stop.
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = read_state(data_dir)
            if state is not None and state.status == "running":
                if states is not None:
                    states.append(state)
                children = psutil.Process().children(recursive=True)
                platform.pids += [p.pid for p in children if p.pid not in before]
                os.kill(os.getpid(), signum)
                return
            time.sleep(0.02)  # polling interval

    threading.Thread(target=watch, daemon=True).start()


def _alive(pids: list[int]) -> list[int]:
    result = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                result.append(pid)
        except psutil.NoSuchProcess:
            pass
    return result


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_until_signalled_then_stops_everything(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform, signum: signal.Signals
):
    _stop_once_running(tmp_path, fake_platform, signum)

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 0, result.output
    assert "Orchard is up." in result.output
    assert "First run" not in result.output
    assert "Orchard stopped." in result.output
    assert "orchard demo" in result.output
    # mlflow + its grandchild, inference, evaluation, retraining, gateway
    assert len(fake_platform.pids) >= 6
    assert _alive(fake_platform.pids) == []
    assert not is_running(tmp_path)
    assert not (tmp_path / "state.json").exists()


def test_the_first_run_trains_and_shows_the_training_log(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform
):
    fake_platform.registry = [
        {"credit-risk": None, "digits": None},
        {"credit-risk": "1", "digits": "1"},
    ]
    _stop_once_running(tmp_path, fake_platform, signal.SIGTERM)

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 0, result.output
    assert "First run: training and registering credit-risk, digits" in result.output
    assert "train        | epoch 1/1" in result.output
    assert "Registered digits version 1 (accuracy 0.900)" in result.output


def test_a_failed_training_stops_what_was_started_and_exits_non_zero(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform, fake_spec: Any
):
    fake_platform.registry = [{"credit-risk": None, "digits": "1"}]
    fake_platform.specs["train"] = fake_spec(
        "train", "--stderr", "MLflow said no", "--exit-code", "2", serve=False
    )

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 1
    assert "train        | MLflow said no" in result.output
    assert "Orchard failed to start: train exited with code 2" in result.output
    assert not is_running(tmp_path)


def test_a_service_that_exits_on_its_own_stops_the_rest_and_exits_non_zero(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform, fake_spec: Any
):
    fake_platform.specs["gateway"] = fake_spec("gateway", "--quit-when-ready", "4")

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 1
    assert "gateway exited with code 4 unexpectedly — stopping Orchard" in result.output
    assert not is_running(tmp_path)


def test_a_service_that_never_gets_ready_is_reported(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform, fake_spec: Any
):
    fake_platform.specs["inference"] = fake_spec("inference", "--never-ready", ready_timeout=0.5)

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 1
    assert "Orchard failed to start: inference was not ready at http://" in result.output


def test_evaluation_is_ready_before_the_gateway_and_is_listed_when_up(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform
):
    args = _up(tmp_path, port_factory)
    evaluation_port = args[args.index("--evaluation-port") + 1]
    states: list[InstanceState] = []
    _stop_once_running(tmp_path, fake_platform, signal.SIGTERM, states)

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    output = result.output
    # The fake services log each readiness probe they answer.
    assert output.index("evaluation   | GET /ready") < output.index(
        "gateway      | gateway started"
    )
    assert f"Evaluation   http://127.0.0.1:{evaluation_port}" in output
    (state,) = states
    evaluation = state.services["evaluation"]
    assert evaluation.url == f"http://127.0.0.1:{evaluation_port}"
    assert evaluation.health_url == f"http://127.0.0.1:{evaluation_port}/readyz"
    assert evaluation.pid is not None


def test_an_evaluation_that_never_gets_ready_stops_up_before_the_gateway_starts(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform, fake_spec: Any
):
    fake_platform.specs["evaluation"] = fake_spec("evaluation", "--never-ready", ready_timeout=0.5)

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 1
    assert "Orchard failed to start: evaluation was not ready at http://" in result.output
    assert "gateway started" not in result.output
    assert not is_running(tmp_path)


def test_retraining_is_ready_after_evaluation_and_before_the_gateway_and_is_listed(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform
):
    args = _up(tmp_path, port_factory)
    retraining_port = args[args.index("--retraining-port") + 1]
    states: list[InstanceState] = []
    _stop_once_running(tmp_path, fake_platform, signal.SIGTERM, states)

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    output = result.output
    evaluation_ready = output.index("evaluation   | GET /ready")
    retraining_ready = output.index("retraining   | GET /ready")
    assert evaluation_ready < retraining_ready < output.index("gateway      | gateway started")
    assert f"Retraining   http://127.0.0.1:{retraining_port}" in output
    (state,) = states
    retraining = state.services["retraining"]
    assert retraining.health_url == f"http://127.0.0.1:{retraining_port}/readyz"
    assert retraining.pid is not None


def test_a_missing_champion_after_training_stops_up_before_retraining_starts(
    tmp_path: Path, port_factory: Any, fake_platform: FakePlatform
):
    fake_platform.registry = [{"credit-risk": None, "digits": "1"}]

    result = runner.invoke(app, _up(tmp_path, port_factory))

    assert result.exit_code == 1
    assert "the registry has no credit-risk@champion after training" in result.output
    assert "retraining |" not in result.output
