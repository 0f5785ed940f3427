"""The app factory: health, readiness, metrics, request ids, lifespan and tracing."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchard_core import ServiceSettings, create_app, new_registry
from orchard_core.logs import JsonFormatter, current_request_id


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str | None]:
        logging.getLogger("orchard.test").info("handling %s", thing)
        return {"thing": thing, "request_id": current_request_id()}

    return router


def test_healthz_is_always_alive() -> None:
    app = create_app(ServiceSettings(), title="t", readiness=lambda: "still loading")
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_reports_the_reason_when_not_ready() -> None:
    state = {"reason": "loading model 'm'"}
    app = create_app(ServiceSettings(), title="t", readiness=lambda: state["reason"])
    client = TestClient(app)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "not ready: loading model 'm'"}
    state["reason"] = None  # type: ignore[assignment]
    assert client.get("/readyz").status_code == 200


async def test_async_readiness_and_a_crashing_check() -> None:
    async def ready() -> str | None:
        return None

    def broken() -> str | None:
        raise ConnectionError("db down")

    assert (
        TestClient(create_app(ServiceSettings(), title="t", readiness=ready))
        .get("/readyz")
        .status_code
        == 200
    )
    response = TestClient(create_app(ServiceSettings(), title="t", readiness=broken)).get("/readyz")
    assert response.status_code == 503
    assert "ConnectionError" in response.json()["error"]


def test_request_id_is_propagated_or_created() -> None:
    client = TestClient(create_app(ServiceSettings(), title="t", routers=[_router()]))
    given = client.get("/things/a", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assert given.json()["request_id"] == "abc-123"
    created = client.get("/things/a")
    assert len(created.headers["x-request-id"]) == 32
    assert created.json()["request_id"] == created.headers["x-request-id"]
    # An absurd id is replaced rather than echoed into logs.
    weird = client.get("/things/a", headers={"X-Request-Id": "x" * 500})
    assert weird.headers["x-request-id"] != "x" * 500


def test_red_metrics_use_route_templates_not_raw_paths() -> None:
    registry = new_registry()
    settings = ServiceSettings(service_name="demo")
    client = TestClient(create_app(settings, title="t", routers=[_router()], registry=registry))
    for name in ("a", "b", "c"):
        client.get(f"/things/{name}")
    client.get("/missing")
    labels = {"method": "GET", "route": "/things/{thing}", "code": "200"}
    assert registry.get_sample_value("orchard_demo_http_requests_total", labels) == 3
    assert (
        registry.get_sample_value(
            "orchard_demo_http_requests_total",
            {"method": "GET", "route": "unmatched", "code": "404"},
        )
        == 1
    )
    text = client.get("/metrics").text
    assert "orchard_demo_http_request_duration_seconds_bucket" in text
    assert "/things/a" not in text


def test_lifespan_runs_the_service_start_and_stop() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    with TestClient(create_app(ServiceSettings(), title="t", lifespan=lifespan)) as client:
        assert client.get("/healthz").status_code == 200
        assert events == ["start"]
    assert events == ["start", "stop"]


def test_json_logs_carry_request_and_trace_ids() -> None:
    exporter = InMemorySpanExporter()
    app = create_app(ServiceSettings(), title="t", routers=[_router()], span_exporter=exporter)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo"))
    logger = logging.getLogger("orchard.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with TestClient(app) as client:
            client.get("/things/x", headers={"X-Request-Id": "rid-7"})
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["message"] == "handling x"
    assert line["request_id"] == "rid-7"
    assert line["service"] == "demo"
    assert len(line["trace_id"]) == 32
    assert int(line["trace_id"], 16) != 0
    spans = exporter.get_finished_spans()
    assert any(format(s.context.trace_id, "032x") == line["trace_id"] for s in spans)


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    app = create_app(ServiceSettings(), title="t")
    assert app.state.tracer_provider is None


def test_tracing_is_on_with_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    app = create_app(ServiceSettings(), title="t")
    assert app.state.tracer_provider is not None
    app.state.tracer_provider.shutdown()
