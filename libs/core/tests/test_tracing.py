"""Tracing: log lines carry the span they were written in, noisy endpoints are not traced,
sampling follows OTEL_TRACES_SAMPLER, context crosses into child processes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchard_core import ServiceSettings, create_app
from orchard_core.logs import JsonFormatter
from orchard_core.settings import SettingsError
from orchard_core.tracing import (
    MAX_LINKS,
    context_from_env,
    new_tracer_provider,
    set_model_attributes,
    trace_links,
    traceparent_env,
)

_log = logging.getLogger("orchard.test.tracing")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_line_logged_inside_a_span_carries_its_ids(log_lines: io.StringIO) -> None:
    provider, _ = _provider()
    tracer = provider.get_tracer("test")
    _log.info("outside")
    with tracer.start_as_current_span("outer") as outer:
        _log.info("in outer")
        with tracer.start_as_current_span("inner") as inner:
            _log.info("in inner")
    outside, in_outer, in_inner = _lines(log_lines)
    assert "trace_id" not in outside
    assert "span_id" not in outside
    trace_id = f"{outer.get_span_context().trace_id:032x}"
    assert in_outer["trace_id"] == in_inner["trace_id"] == trace_id
    assert in_outer["span_id"] == f"{outer.get_span_context().span_id:016x}"
    assert in_inner["span_id"] == f"{inner.get_span_context().span_id:016x}"
    assert "trace_sampled" not in in_inner


def test_an_unsampled_span_is_marked_in_the_log(log_lines: io.StringIO) -> None:
    provider = new_tracer_provider(
        "t", exporter=InMemorySpanExporter(), environ={"OTEL_TRACES_SAMPLER": "always_off"}
    )
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("dropped"):
        _log.info("not kept")
    (line,) = _lines(log_lines)
    assert len(str(line["trace_id"])) == 32
    assert line["trace_sampled"] is False


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/v2/models/{model}/infer")
    async def infer(model: str) -> dict[str, str]:
        set_model_attributes(model, "7")
        _log.info("predicting")
        return {"model": model}

    return router


def test_requests_are_traced_with_their_log_lines(log_lines: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(
        ServiceSettings(service_name="demo", access_log=True),
        title="t",
        version="1.2.3",
        routers=[_router()],
        span_exporter=exporter,
    )
    with TestClient(app) as client:
        for path in ("/metrics", "/healthz", "/readyz", "/v2/health/live"):
            client.get(path)  # (this app has no /v2/health/live: a 404, still not traced)
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        answer = client.post("/v2/models/credit-risk/infer", headers={"traceparent": traceparent})
        assert answer.status_code == 200
    spans = exporter.get_finished_spans()
    (server,) = spans  # no span for metrics and health, none per ASGI message
    assert server.kind is trace.SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["orchard.model"] == "credit-risk"
    assert server.attributes["orchard.model_version"] == "7"
    assert server.resource.attributes["service.name"] == "demo"
    assert server.resource.attributes["service.version"] == "1.2.3"
    # The caller's context: the same trace, the caller's span as the parent.
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    ids = {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": f"{server.context.span_id:016x}",
    }
    lines = [line for line in _lines(log_lines) if line.get("path") != "/healthz"]
    predicting = next(line for line in lines if line["message"] == "predicting")
    access = next(line for line in lines if line.get("path") == "/v2/models/credit-risk/infer")
    for line in (predicting, access):  # the access line too: it is written inside the span
        assert {key: line.get(key) for key in ids} == ids


def test_sampling_follows_the_standard_variables() -> None:
    provider = new_tracer_provider(
        "t",
        exporter=InMemorySpanExporter(),
        environ={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
    )
    assert provider is not None
    assert "ParentBased" in provider.sampler.get_description()
    with provider.get_tracer("t").start_as_current_span("root") as span:
        assert not span.get_span_context().trace_flags.sampled
    with pytest.raises(SettingsError, match="OTEL_TRACES_SAMPLER_ARG"):
        new_tracer_provider(
            "t",
            exporter=InMemorySpanExporter(),
            environ={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
        )
    with pytest.raises(SettingsError, match="OTEL_TRACES_SAMPLER"):
        new_tracer_provider(
            "t", exporter=InMemorySpanExporter(), environ={"OTEL_TRACES_SAMPLER": "sometimes"}
        )


def test_tracing_is_off_without_an_endpoint() -> None:
    assert new_tracer_provider("t", environ={}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert new_tracer_provider("t", environ={**endpoint, "OTEL_SDK_DISABLED": "true"}) is None


def test_context_crosses_into_a_child_process_environment() -> None:
    assert traceparent_env() == {}  # no span, nothing to pass
    provider, exporter = _provider()
    with provider.get_tracer("t").start_as_current_span("parent") as parent:
        env = traceparent_env()
    assert env["TRACEPARENT"].startswith("00-")
    # The child side: its first span is the parent's child, in the same trace.
    with provider.get_tracer("t").start_as_current_span("child", context=context_from_env(env)):
        pass
    child = exporter.get_finished_spans()[-1]
    assert child.context.trace_id == parent.get_span_context().trace_id
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert trace.get_current_span(context_from_env({"TRACEPARENT": "junk"})).get_span_context() == (
        trace.INVALID_SPAN_CONTEXT
    )


def test_links_are_valid_distinct_and_bounded() -> None:
    pairs: list[tuple[object, object]] = [
        (f"{n + 1:032x}", f"{n + 1:016x}") for n in range(MAX_LINKS + 5)
    ]
    pairs += [pairs[0], (None, None), ("xyz", "1" * 16), ("0" * 32, "1" * 16), ("a" * 32, 5)]
    links, left_out = trace_links(pairs)
    assert len(links) == MAX_LINKS
    assert left_out == 5
    assert links[0].context.trace_id == 1
    assert links[0].context.span_id == 1
    assert trace_links([("a" * 32, "b" * 16)], limit=0) == ([], 1)


async def _raw_post(
    app: Any, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes]]:
    """One request over ASGI with exactly these header bytes (HTTP clients re-encode them)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"])


@pytest.mark.parametrize(
    "value", [b"\x80\\", b"\\\x80", b"caf\xe9"], ids=["raises", "warns", "latin-1"]
)
def test_a_host_tracing_cannot_decode_gets_the_apps_answer(value: bytes) -> None:
    # OpenTelemetry's ASGI middleware decodes the Host header as UTF-8, else with Python's
    # unicode_escape codec, which raises or warns on some bytes: such a request used to get a
    # bare 500 from outside the app (no request id), a DeprecationWarning error under pytest.
    exporter = InMemorySpanExporter()
    app = create_app(
        ServiceSettings(service_name="demo"),
        title="t",
        version="1",
        routers=[_router()],
        span_exporter=exporter,
    )
    with TestClient(app):  # runs the lifespan
        status, headers = anyio.run(
            _raw_post, app, "/v2/models/credit-risk/infer", [(b"host", value)]
        )
        assert status == 200
        assert headers[b"x-request-id"]  # answered by the app's own middleware
        status, _ = anyio.run(_raw_post, app, "/v2/models/credit-risk/infer", [(b"host", b"ok")])
        assert status == 200
    assert exporter.get_finished_spans()  # tracing goes on
