"""The chart's MLflow container, run for real: its command line and environment as rendered,
against a real PostgreSQL database, answering the Host names the services use and refusing
others (MLflow's DNS-rebinding protection)."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .chart_render import CHART, _of_kind, _render

pytestmark = pytest.mark.integration

_START_TIMEOUT_S = 180.0  # MLflow's imports take ~15 s, far more on a busy 2-core machine


def _container(documents: tuple[dict[str, Any], ...], component: str) -> dict[str, Any]:
    (deployment,) = [
        d
        for d in _of_kind(documents, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def _mlflow() -> str:
    override = os.environ.get("ORCHARD_TEST_MLFLOW")
    found = override or shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if not found:
        reason = "no mlflow executable beside this interpreter (or ORCHARD_TEST_MLFLOW)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _status(port: int, host: str, path: str = "/api/2.0/mlflow/experiments/search") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "GET", f"{path}?max_results=1" if "search" in path else path, headers={"Host": host}
        )
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def chart_mlflow(
    postgres_server: str, free_port: int, tmp_path: Path
) -> Iterator[tuple[int, dict[str, str]]]:
    documents = _render(CHART / "ci" / "default-values.yaml")
    container = _container(documents, "mlflow")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # The URL the chart builds for MLflow's store (bundled PostgreSQL), pointed at a real,
    # fresh database: the same driver scheme, so MLflow must accept it as it would there.
    rendered_url = env["MLFLOW_BACKEND_STORE_URI"]
    assert rendered_url.startswith("postgresql+psycopg://"), rendered_url
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("CREATE DATABASE chart_mlflow")
    env["MLFLOW_BACKEND_STORE_URI"] = postgres_server.rsplit("/", 1)[0] + "/chart_mlflow"
    command = [_expand(arg, env) for arg in container["command"]]
    assert command[:2] == ["mlflow", "server"]
    replacements = {
        "--host=": "--host=127.0.0.1",  # loopback only in tests
        "--port=": f"--port={free_port}",
        "--artifacts-destination=": f"--artifacts-destination={tmp_path / 'artifacts'}",
    }
    for prefix, replacement in replacements.items():
        (index,) = [i for i, arg in enumerate(command) if arg.startswith(prefix)]
        command[index] = replacement
    log = tmp_path / "mlflow.log"
    server_env = {
        **os.environ,
        **env,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job workers in a test
    }
    server_env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_mlflow(), *command[1:], "--workers=1"],
            cwd=tmp_path,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if _status(free_port, "localhost", "/health") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)  # polling interval while the server starts
        yield free_port, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_charts_mlflow_serves_the_services_and_refuses_unknown_hosts(
    chart_mlflow: tuple[int, dict[str, str]],
) -> None:
    port, _ = chart_mlflow
    documents = _render(CHART / "ci" / "default-values.yaml")
    # Every service reaches MLflow by the URL the chart gives it: that Host must be accepted.
    hosts = set()
    for component in ("evaluation", "retraining"):
        env = {e["name"]: e.get("value", "") for e in _container(documents, component)["env"]}
        url = env["MLFLOW_TRACKING_URI"]
        hosts.add(url.removeprefix("http://").split("/")[0])
    assert hosts
    for host in sorted(hosts):
        assert _status(port, host) == 200, host
    assert _status(port, "localhost:5000") == 200  # kubectl port-forward
    # A name the chart did not allow (a DNS-rebinding attempt) is refused.
    assert _status(port, "attacker.example") == 403
    assert _status(port, "attacker.example", "/health") == 200  # probes never need the name
