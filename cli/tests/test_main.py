"""The `orchard` command: refusals before anything starts, and `orchard status`."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchard_cli.lockfile import InstanceLock, InstanceState, ServiceState, is_running
from orchard_cli.main import app
from orchard_cli.supervisor import Supervisor

runner = CliRunner()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def ports(port_factory: Any) -> list[str]:
    return [
        *("--mlflow-port", str(port_factory())),
        *("--inference-port", str(port_factory())),
        *("--evaluation-port", str(port_factory())),
        *("--gateway-port", str(port_factory())),
    ]


def _state(data_dir: Path, **health_urls: str) -> InstanceState:
    services = {
        name: ServiceState(url.rsplit("/", 1)[0], url, 1234) for name, url in health_urls.items()
    }
    return InstanceState(os.getpid(), "running", str(data_dir), services)


def test_up_refuses_to_start_twice_on_the_same_data_folder(tmp_path: Path, ports: list[str]):
    state = _state(tmp_path, gateway="http://127.0.0.1:8000/readyz")
    with InstanceLock(tmp_path) as lock:
        lock.write_state(state)

        result = runner.invoke(app, ["up", "--data-dir", str(tmp_path), *ports])

    assert result.exit_code == 1
    assert (
        f"Orchard is already running (pid {os.getpid()}) — gateway at http://127.0.0.1:8000"
        in result.output
    )


def test_up_names_a_busy_port_and_starts_nothing(tmp_path: Path, port_factory: Any, busy_port: int):
    args = ["up", "--data-dir", str(tmp_path), "--mlflow-port", str(port_factory())]
    args += ["--inference-port", str(port_factory()), "--evaluation-port", str(port_factory())]
    args += ["--gateway-port", str(busy_port)]

    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert f"port {busy_port} on 127.0.0.1 (--gateway-port) is already in use" in result.output
    assert not (tmp_path / "mlflow").exists()
    assert not is_running(tmp_path)


def test_ports_and_data_folder_can_come_from_the_environment(
    tmp_path: Path, port_factory: Any, busy_port: int
):
    env = {
        "ORCHARD_DATA_DIR": str(tmp_path),
        "ORCHARD_MLFLOW_PORT": str(busy_port),
        "ORCHARD_INFERENCE_PORT": str(port_factory()),
        "ORCHARD_EVALUATION_PORT": str(port_factory()),
        "ORCHARD_GATEWAY_PORT": str(port_factory()),
    }

    result = runner.invoke(app, ["up"], env=env)

    assert result.exit_code == 1
    assert f"port {busy_port} on 127.0.0.1 (--mlflow-port)" in result.output
    assert (tmp_path / "orchard.lock").exists() is False


def test_a_busy_evaluation_port_is_named_and_can_be_changed_from_the_environment(
    tmp_path: Path, port_factory: Any, busy_port: int
):
    env = {
        "ORCHARD_MLFLOW_PORT": str(port_factory()),
        "ORCHARD_INFERENCE_PORT": str(port_factory()),
        "ORCHARD_EVALUATION_PORT": str(busy_port),
        "ORCHARD_GATEWAY_PORT": str(port_factory()),
    }

    result = runner.invoke(app, ["up", "--data-dir", str(tmp_path)], env=env)

    assert result.exit_code == 1
    assert (
        f"port {busy_port} on 127.0.0.1 (--evaluation-port) is already in use by another "
        "program; stop it or choose another port with --evaluation-port"
    ) in result.output
    assert not (tmp_path / "mlflow").exists()


def test_evaluation_cannot_share_a_port_with_another_service(tmp_path: Path, port_factory: Any):
    port = str(port_factory())
    args = ["up", "--data-dir", str(tmp_path), "--mlflow-port", str(port_factory())]
    args += ["--inference-port", str(port_factory())]
    args += ["--evaluation-port", port, "--gateway-port", port]

    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert f"--evaluation-port and --gateway-port are both set to port {port}" in result.output


def test_up_says_which_service_packages_are_missing(
    tmp_path: Path, ports: list[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(
        "orchard_cli.up.missing_modules", lambda: ["orchard_gateway.__main__ (package x)"]
    )

    result = runner.invoke(app, ["up", "--data-dir", str(tmp_path), *ports])

    assert result.exit_code == 1
    assert "not installed: orchard_gateway.__main__" in result.output


def test_status_when_not_running(tmp_path: Path):
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])

    assert result.exit_code == 3
    assert "Orchard is not running" in result.output


def test_status_probes_each_service(
    tmp_path: Path, supervisor: Supervisor, fake_spec: Any, port_factory: Any
):
    spec = fake_spec("gateway")
    supervisor.start(spec)
    assert spec.ready_url is not None
    down = f"http://127.0.0.1:{port_factory()}/health"
    with InstanceLock(tmp_path) as lock:
        lock.write_state(_state(tmp_path, gateway=spec.ready_url))
        healthy = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])
        lock.write_state(_state(tmp_path, gateway=spec.ready_url, mlflow=down))
        degraded = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])

    assert healthy.exit_code == 0, healthy.output
    assert f"Orchard is running (pid {os.getpid()}" in healthy.output
    assert "ready" in healthy.output
    assert degraded.exit_code == 1
    assert "down" in degraded.output


def test_up_says_when_the_data_folder_cannot_be_created(tmp_path: Path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")

    result = runner.invoke(app, ["up", "--data-dir", str(not_a_folder / "orchard")])

    assert result.exit_code == 1
    assert f"Cannot use data folder {not_a_folder / 'orchard'}" in result.output
