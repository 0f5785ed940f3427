"""The whole local platform, started by the real `orchard up` on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

STARTUP_DEADLINE_S = 420.0  # first run trains both demo models on a 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Stack:
    """URLs of a running platform and where its logs go."""

    gateway: str
    runtime: str
    mlflow: str
    evaluation: str
    data_dir: Path
    log: Path


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"orchard up exited with {proc.returncode} before ready:\n{tail}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)  # polling interval, not a wait for an outcome
    tail = log.read_text(errors="replace")[-4000:]
    pytest.fail(f"{url} not ready within {deadline_s:.0f}s:\n{tail}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start `orchard up` (MLflow, training, runtime, evaluation, gateway); stop it after."""
    data_dir = tmp_path_factory.mktemp("orchard-data")
    log = data_dir / "orchard-up.log"
    names = ("mlflow", "inference", "evaluation", "retraining", "gateway")
    ports: dict[str, int] = {}
    while len(ports) < len(names):  # distinct, though each was free when asked for
        port = _free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    argv = [
        str(Path(sys.executable).parent / "orchard"), "up",
        "--data-dir", str(data_dir), "--host", "127.0.0.1",
        "--mlflow-port", str(ports["mlflow"]),
        "--inference-port", str(ports["inference"]),
        "--evaluation-port", str(ports["evaluation"]),
        "--retraining-port", str(ports["retraining"]),
        "--no-monitoring",  # tests/e2e runs the platform with Prometheus
        "--gateway-port", str(ports["gateway"]),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    stack = Stack(
        gateway=f"http://127.0.0.1:{ports['gateway']}",
        runtime=f"http://127.0.0.1:{ports['inference']}",
        mlflow=f"http://127.0.0.1:{ports['mlflow']}",
        evaluation=f"http://127.0.0.1:{ports['evaluation']}",
        data_dir=data_dir,
        log=log,
    )
    try:
        for model in ("credit-risk", "digits"):
            _wait_ready(proc, f"{stack.gateway}/v2/models/{model}/ready", log, STARTUP_DEADLINE_S)
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail("orchard up did not stop within 60 s of SIGTERM")


@pytest.fixture(scope="session")
def credit_model(stack: Stack) -> Iterator[Any]:
    """The credit-risk champion as scikit-learn, loaded from the stack's MLflow registry."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(stack.mlflow)
    try:
        client = mlflow.MlflowClient(stack.mlflow)
        version = client.get_model_version_by_alias("credit-risk", "champion").version
        yield mlflow.sklearn.load_model(f"models:/credit-risk/{version}")
    finally:
        mlflow.set_tracking_uri(previous)
