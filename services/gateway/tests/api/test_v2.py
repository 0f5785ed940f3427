"""OIP v2 through the gateway, against a stand-in backend on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ..conftest import Gateway, MakeGateway
from ..factories import eventually, infer_body, routes_to, write_routes
from ..fake_backend import Canned, FakeBackend

INFER = "/v2/models/credit-risk/infer"
JSON = {"Content-Type": "application/json"}


async def test_infer_is_forwarded_to_the_pinned_version_byte_for_byte(
    gateway: Gateway, backend: FakeBackend
) -> None:
    body = infer_body()
    reply = await gateway.client.post(INFER, content=body, headers=JSON)
    assert reply.status_code == 200
    [seen] = backend.seen
    assert (seen.method, seen.path) == ("POST", "/v2/models/credit-risk/versions/1/infer")
    assert seen.body == body
    assert seen.headers["Content-Type"] == "application/json"
    assert reply.json()["model_version"] == "1"
    assert reply.headers["x-orchard-model-version"] == "1"
    assert reply.headers["content-type"] == "application/json"


async def test_infer_on_the_routed_version(gateway: Gateway, backend: FakeBackend) -> None:
    reply = await gateway.client.post(
        "/v2/models/digits/versions/1/infer", content=infer_body(), headers=JSON
    )
    assert reply.status_code == 200
    assert backend.seen[0].path == "/v2/models/digits/versions/1/infer"


@pytest.mark.parametrize("status", [400, 404, 500, 503])
async def test_backend_errors_come_back_unchanged(
    gateway: Gateway, backend: FakeBackend, status: int
) -> None:
    error = b'{"error":  "input \'features\': expected 4 columns"}\n'
    backend.canned["/v2/models/credit-risk/versions/1/infer"] = Canned(
        status, error, "application/json; charset=utf-8", {"X-Backend-Note": "kept"}
    )
    reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
    assert reply.status_code == status
    assert reply.content == error
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.headers["x-backend-note"] == "kept"
    assert (
        gateway.metric(
            "orchard_gateway_upstream_requests_total",
            model="credit-risk",
            version="1",
            code=str(status),
        )
        == 1
    )


async def test_a_sent_request_id_reaches_the_backend_and_comes_back(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.post(
        INFER, content=infer_body(), headers={**JSON, "X-Request-Id": "abc-123"}
    )
    assert reply.headers["x-request-id"] == "abc-123"
    sent = [v for k, v in backend.seen[0].headers.items() if k.lower() == "x-request-id"]
    assert sent == ["abc-123"]


async def test_without_a_request_id_one_is_made_and_sent_upstream(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
    made = reply.headers["x-request-id"]
    assert len(made) >= 16
    assert backend.seen[0].headers["X-Request-Id"] == made


async def test_an_unusable_request_id_is_replaced_upstream_too(
    gateway: Gateway, backend: FakeBackend
) -> None:
    too_long = "x" * 500
    reply = await gateway.client.post(
        INFER, content=infer_body(), headers={**JSON, "X-Request-Id": too_long}
    )
    assert reply.headers["x-request-id"] != too_long
    assert backend.seen[0].headers["X-Request-Id"] == reply.headers["x-request-id"]


async def test_trace_context_passes_through_when_tracing_is_off(
    gateway: Gateway, backend: FakeBackend
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await gateway.client.post(
        INFER,
        content=infer_body(),
        headers={**JSON, "traceparent": traceparent, "tracestate": "vendor=1"},
    )
    assert backend.seen[0].headers["traceparent"] == traceparent
    assert backend.seen[0].headers["tracestate"] == "vendor=1"


async def test_trace_context_continues_from_the_gateways_span_when_tracing_is_on(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    exporter = InMemorySpanExporter()
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    incoming = f"00-{trace_id}-b7ad6b7169203331-01"
    async with make_gateway(span_exporter=exporter) as gateway:
        reply = await gateway.client.post(
            INFER, content=infer_body(), headers={**JSON, "traceparent": incoming}
        )
        assert reply.status_code == 200
    sent = backend.seen[0].headers["traceparent"]
    _, sent_trace, sent_parent, _ = sent.split("-")
    assert sent_trace == trace_id  # same trace ...
    assert sent_parent != "b7ad6b7169203331"  # ... continued by the gateway's client span
    client_spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert format(client_spans[-1].context.span_id, "016x") == sent_parent
    assert (client_spans[-1].attributes or {})["http.response.status_code"] == 200


async def test_hop_by_hop_headers_stay_on_their_hop(gateway: Gateway, backend: FakeBackend) -> None:
    await gateway.client.post(
        INFER,
        content=infer_body(),
        headers={
            **JSON,
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "1",
            "Proxy-Authorization": "secret",
            "X-Tenant": "acme",
        },
    )
    seen = backend.seen[0].headers
    assert seen["X-Tenant"] == "acme"
    assert "X-Hop" not in seen
    assert "Proxy-Authorization" not in seen
    assert seen.get("Host", "").startswith("127.0.0.1:")


async def test_many_requests_share_one_keep_alive_connection(
    gateway: Gateway, backend: FakeBackend
) -> None:
    for _ in range(20):
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 200
    assert len(backend.seen) == 20
    assert len(backend.peer_ports) == 1


async def test_upstream_calls_are_measured(gateway: Gateway, backend: FakeBackend) -> None:
    await gateway.client.post(INFER, content=infer_body(), headers=JSON)
    labels = {"model": "credit-risk", "version": "1"}
    assert gateway.metric("orchard_gateway_upstream_requests_total", **labels, code="200") == 1
    assert gateway.metric("orchard_gateway_upstream_duration_seconds_count", **labels) == 1
    assert gateway.metric("orchard_gateway_routed_models") == 2
    assert gateway.metric("orchard_gateway_route_table_reloads_total", outcome="success") == 1
    exposition = (await gateway.client.get("/metrics")).text
    assert "orchard_gateway_upstream_requests_total{" in exposition


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [', "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"inputs": []}', "'inputs' is required"),
        (infer_body(shape=[2, "x"]), "'shape' must be a list of non-negative integers"),
        (infer_body(datatype="FP99"), "datatype"),
        (infer_body(datatype="INT32"), "needs integers"),
        (infer_body(data=[1.0, 2.0, 3.0]), "input 'features'"),
    ],
    ids=["malformed", "empty", "not-object", "no-inputs", "shape", "datatype", "type", "length"],
)
async def test_bad_input_is_refused_by_the_gateway_itself(
    gateway: Gateway, backend: FakeBackend, body: bytes, message: str
) -> None:
    reply = await gateway.client.post(INFER, content=body, headers=JSON)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    assert backend.seen == []


async def test_an_unknown_model_is_a_404_naming_the_routed_ones(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.post("/v2/models/nope/infer", content=infer_body())
    assert reply.status_code == 404
    assert reply.json() == {
        "error": "model 'nope' is not routed by this gateway (routed models: credit-risk, digits)"
    }
    assert backend.seen == []


async def test_a_version_other_than_the_routed_one_is_a_404(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.post(
        "/v2/models/digits/versions/2/infer", content=infer_body(), headers=JSON
    )
    assert reply.status_code == 404
    assert "no version '2'" in reply.json()["error"]
    assert "routes version '1'" in reply.json()["error"]
    assert backend.seen == []


async def test_a_body_over_the_limit_is_a_413_by_content_length(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async with make_gateway(max_body_bytes=100) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body() + b" " * 100, headers=JSON)
    assert reply.status_code == 413
    assert "ORCHARD_GATEWAY_MAX_BODY_BYTES" in reply.json()["error"]
    assert backend.seen == []


async def test_a_chunked_body_over_the_limit_is_a_413(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 50

    async with make_gateway(max_body_bytes=100) as gateway:
        reply = await gateway.client.post(INFER, content=chunks(), headers=JSON)
    assert reply.status_code == 413
    assert backend.seen == []


async def test_a_chunked_body_within_the_limit_is_forwarded_whole(
    gateway: Gateway, backend: FakeBackend
) -> None:
    body = infer_body()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    reply = await gateway.client.post(INFER, content=chunks(), headers=JSON)
    assert reply.status_code == 200
    assert backend.seen[0].body == body


async def test_an_unreachable_backend_is_a_502(
    tmp_path: Path, make_gateway: MakeGateway, refused_url: str
) -> None:
    routes = write_routes(tmp_path / "down.yaml", routes_to(refused_url, "credit-risk"))
    async with make_gateway(routes_file=routes) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 502
        message = reply.json()["error"]
        assert message.startswith(
            f"backend for model 'credit-risk' at {refused_url} is unreachable: "
        )
        assert (
            gateway.metric(
                "orchard_gateway_upstream_requests_total",
                model="credit-risk",
                version="1",
                code="unreachable",
            )
            == 1
        )


async def test_a_backend_slower_than_the_timeout_is_a_504(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    backend.stall = True
    async with make_gateway(upstream_timeout_s=0.2) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 504
        assert reply.json() == {
            "error": f"backend for model 'credit-risk' at {backend.url} did not answer within 0.2s"
        }
        assert (
            gateway.metric(
                "orchard_gateway_upstream_requests_total",
                model="credit-risk",
                version="1",
                code="timeout",
            )
            == 1
        )
    assert backend.arrived.is_set()


async def test_a_backend_redirect_is_returned_not_followed(
    gateway: Gateway, backend: FakeBackend
) -> None:
    backend.canned["/v2/models/digits/versions/1"] = Canned(
        307, b"", "text/plain", {"Location": "/elsewhere"}
    )
    reply = await gateway.client.get("/v2/models/digits")
    assert reply.status_code == 307
    assert reply.headers["location"] == "/elsewhere"
    assert len(backend.seen) == 1


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("/v2/models/digits", "/v2/models/digits/versions/1"),
        ("/v2/models/digits/versions/1", "/v2/models/digits/versions/1"),
        ("/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"),
        ("/v2/models/digits/versions/1/ready", "/v2/models/digits/versions/1/ready"),
    ],
)
async def test_model_metadata_and_readiness_are_forwarded_pinned(
    gateway: Gateway, backend: FakeBackend, path: str, upstream_path: str
) -> None:
    reply = await gateway.client.get(path)
    assert reply.status_code == 200
    assert reply.headers["x-orchard-model-version"] == "1"
    assert [(s.method, s.path) for s in backend.seen] == [("GET", upstream_path)]


async def test_metadata_of_an_unrouted_version_is_a_404(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.get("/v2/models/digits/versions/7/ready")
    assert reply.status_code == 404
    assert backend.seen == []


@pytest.mark.parametrize("action", ["load", "unload"])
async def test_repository_calls_go_to_the_models_backend(
    gateway: Gateway, backend: FakeBackend, action: str
) -> None:
    reply = await gateway.client.post(f"/v2/repository/models/digits/{action}")
    assert reply.status_code == 200
    assert backend.seen[0].path == f"/v2/repository/models/digits/{action}"


async def test_the_gateways_own_v2_endpoints(gateway: Gateway, backend: FakeBackend) -> None:
    server = (await gateway.client.get("/v2")).json()
    assert server["name"] == "orchard-gateway"
    assert "version" in server
    assert (await gateway.client.get("/v2/health/live")).json() == {"live": True}
    assert (await gateway.client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await gateway.client.get("/v2/models")).json() == {"models": ["credit-risk", "digits"]}
    assert (await gateway.client.get("/readyz")).status_code == 200
    assert backend.seen == []


async def test_a_changed_route_table_is_picked_up_while_running(
    gateway: Gateway, backend: FakeBackend
) -> None:
    routes = routes_to(backend.url, "credit-risk", "digits") | routes_to(
        backend.url, "churn", version=3
    )
    write_routes(gateway.settings.routes_file, routes)

    async def churn_listed() -> bool:
        return "churn" in (await gateway.client.get("/v2/models")).json()["models"]

    await eventually(churn_listed, "the new route table")
    reply = await gateway.client.post(
        "/v2/models/churn/versions/3/infer", content=infer_body(), headers=JSON
    )
    assert reply.status_code == 200
    assert backend.seen[0].path == "/v2/models/churn/versions/3/infer"


async def test_a_broken_route_table_keeps_the_last_good_one(
    gateway: Gateway, backend: FakeBackend
) -> None:
    gateway.settings.routes_file.write_text("models: [not, a, mapping]\n")
    await eventually(
        lambda: gateway.metric("orchard_gateway_route_table_reloads_total", outcome="error") > 0,
        "the failed reload to be counted",
    )
    reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
    assert reply.status_code == 200
    assert (await gateway.client.get("/readyz")).status_code == 200
