"""One prediction through the gateway is one trace across the gateway and the runtime, and
evaluation's ingest span links to it — checked on the spans a real OTLP/HTTP receiver got."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from orchard_pipelines.datasets import credit_risk
from orchard_pipelines.train import train_credit_risk

pytestmark = pytest.mark.integration

RECEIVER = Path(__file__).with_name("otlp_receiver.py")
READY_DEADLINE_S = 180.0
SPANS_DEADLINE_S = 30.0
SERVER, CLIENT = 2, 3  # OTLP span kinds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Processes started for one test, stopped (SIGTERM, then SIGKILL) at its end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE if name == "receiver" else log, stderr=log, env=env
            )
        self.started.append((name, proc))
        return proc

    def wait_ready(self, name: str, url: str) -> None:
        proc = dict(self.started)[name]
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval
        pytest.fail(f"{name} not ready at {url}:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.started):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for_spans(
    path: Path, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + SPANS_DEADLINE_S
    while True:
        spans = _spans(path)
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)  # polling interval; the exporters batch every 200 ms


def test_one_prediction_is_one_trace_across_gateway_and_runtime(
    mlflow_server: Any, processes: Processes, tmp_path: Path
) -> None:
    model = train_credit_risk(
        tracking_uri=mlflow_server.url, experiment="traces-tests", n_rows=2000, seed=5
    )
    spans_file = tmp_path / "spans.jsonl"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_"))}
    receiver = processes.start(
        "receiver", [sys.executable, str(RECEIVER), str(spans_file)], base_env
    )
    assert receiver.stdout is not None
    first = receiver.stdout.readline().decode().split()
    assert first[:1] == ["listening"], processes.tail("receiver")
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{first[1]}",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        "MLFLOW_TRACKING_URI": mlflow_server.url,
    }
    ports = {name: _free_port() for name in ("inference", "evaluation", "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes.start(
        "inference",
        [sys.executable, "-m", "orchard_inference"],
        {
            **base_env,
            **otel,
            "ORCHARD_INFERENCE_PORT": str(ports["inference"]),
            "ORCHARD_INFERENCE_MODELS": json.dumps({model.name: model.model_uri}),
        },
    )
    processes.start(
        "evaluation",
        [sys.executable, "-m", "orchard_evaluation"],
        {
            **base_env,
            **otel,
            "ORCHARD_EVALUATION_PORT": str(ports["evaluation"]),
            "ORCHARD_EVALUATION_DATABASE_URL": f"sqlite:///{tmp_path / 'evaluation.db'}",
            "ORCHARD_EVALUATION_REPORTS_DIR": str(tmp_path / "reports"),
        },
    )
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f'models:\n  {model.name}: {{backend: "{urls["inference"]}", version: "{model.version}"}}\n'
    )
    processes.start(
        "gateway",
        [sys.executable, "-m", "orchard_gateway"],
        {
            **base_env,
            **otel,
            "ORCHARD_GATEWAY_PORT": str(ports["gateway"]),
            "ORCHARD_GATEWAY_ROUTES_FILE": str(routes),
            "ORCHARD_GATEWAY_JOBS_DIR": str(tmp_path / "jobs"),
            "ORCHARD_GATEWAY_EVALUATION_URL": urls["evaluation"],
            "ORCHARD_GATEWAY_EVENTS_FLUSH_INTERVAL_S": "0.2",
        },
    )
    processes.wait_ready("inference", f"{urls['inference']}/v2/health/ready")
    processes.wait_ready("evaluation", f"{urls['evaluation']}/readyz")
    processes.wait_ready("gateway", f"{urls['gateway']}/readyz")
    # Scrapes and probes: none of them may leave a span.
    for url in urls.values():
        for path in ("/metrics", "/healthz", "/readyz"):
            assert httpx.get(url + path, timeout=10).status_code == 200
    for url in (urls["inference"], urls["gateway"]):
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert httpx.get(url + path, timeout=10).status_code == 200

    frame = credit_risk.generate(4, seed=11)[list(credit_risk.FEATURES)]
    inputs = []
    for column in credit_risk.FEATURES:
        values = frame[column]
        kind = values.dtype.kind
        datatype = "BYTES" if kind in "OUT" else "INT64" if kind in "iu" else "FP64"
        inputs.append({"name": column, "shape": [4], "datatype": datatype, "data": values.tolist()})
    answer = httpx.post(
        f"{urls['gateway']}/v2/models/{model.name}/infer",
        content=orjson.dumps({"inputs": inputs}),
        headers={"Content-Type": "application/json", "X-Request-Id": "trace-it-1"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {(s["service.name"], s["kind"]) for s in spans}
        ingested = any(s["name"] == "ingest events" for s in spans)
        return {("gateway", SERVER), ("gateway", CLIENT), ("inference", SERVER)} <= names and (
            ingested
        )

    spans = _wait_for_spans(spans_file, complete)
    assert complete(spans), json.dumps(spans, indent=1)

    # No span for /metrics, /healthz, /readyz or /v2/health/*.
    targets = {
        str(s["attributes"].get("http.target") or s["attributes"].get("url.path") or "")
        for s in spans
    }
    noisy = {t for t in targets if t in ("/metrics", "/healthz", "/readyz")}
    noisy |= {t for t in targets if t.startswith("/v2/health")}
    assert not noisy, targets

    # The prediction: exactly one trace holds every gateway and runtime span.
    prediction = [s for s in spans if s["service.name"] in ("gateway", "inference")]
    (trace_id,) = {s["trace_id"] for s in prediction}
    by_id = {s["span_id"]: s for s in prediction}
    (gateway_server,) = [
        s for s in prediction if s["service.name"] == "gateway" and s["kind"] == SERVER
    ]
    (gateway_client,) = [
        s for s in prediction if s["service.name"] == "gateway" and s["kind"] == CLIENT
    ]
    (runtime_server,) = [
        s for s in prediction if s["service.name"] == "inference" and s["kind"] == SERVER
    ]
    assert gateway_server["parent_span_id"] == ""  # the caller sent no trace context
    assert gateway_client["parent_span_id"] == gateway_server["span_id"]
    assert by_id[runtime_server["parent_span_id"]] is gateway_client
    for span in (gateway_server, gateway_client, runtime_server):
        assert span["attributes"]["orchard.model"] == model.name
        assert span["attributes"]["orchard.model_version"] == model.version
    for span in (gateway_server, runtime_server):
        resource = span["resource"]
        assert resource["service.version"]
        assert resource["deployment.environment.name"] == "test"

    # Evaluation ingests the event in a trace of its own, linked to the prediction's.
    (ingest,) = [s for s in spans if s["name"] == "ingest events"]
    assert ingest["service.name"] == "evaluation"
    assert ingest["trace_id"] != trace_id
    assert ingest["links"] == [{"trace_id": trace_id, "span_id": gateway_server["span_id"]}]
    assert ingest["attributes"]["orchard.events.accepted"] == 1
    # Nothing else was traced: the prediction's trace and the ingest request's.
    assert {s["trace_id"] for s in spans} == {trace_id, ingest["trace_id"]}
