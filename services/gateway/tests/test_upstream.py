"""What the upstream client sends and relays, header by header."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from orchard_gateway.routes_table import Route
from orchard_gateway.upstream import UpstreamReply, relay_response, request_headers


def test_request_headers_keep_end_to_end_ones_and_set_the_request_id() -> None:
    sent = request_headers(
        [
            (b"host", b"gateway:8000"),
            (b"content-length", b"12"),
            (b"connection", b"keep-alive, X-Hop"),
            (b"x-hop", b"1"),
            (b"transfer-encoding", b"chunked"),
            (b"x-request-id", b"from-the-caller"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json"),
            (b"accept", b"text/plain"),
            (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
        "rid-1",
    )
    assert sent == {
        "content-type": "application/json",
        "accept": "application/json, text/plain",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-request-id": "rid-1",
    }


def test_with_tracing_on_but_no_span_the_callers_trace_context_stays() -> None:
    caller = [(b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    assert request_headers(caller, "r", tracing=True)["traceparent"] == caller[0][1].decode()


def _header(response: object, name: bytes) -> list[bytes]:
    return [v for k, v in response.raw_headers if k == name]  # type: ignore[attr-defined]


def _relay(route: Route, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    return relay_response(route, UpstreamReply(status, tuple(headers), body))


def test_relay_keeps_the_backends_bytes_and_drops_per_hop_headers() -> None:
    body = b'{"error": "model is loading"}'
    response = _relay(
        Route("m", "http://b", "3"),
        503,
        [
            (b"Content-Type", b"application/problem+json"),
            (b"Content-Length", b"999"),
            (b"Server", b"uvicorn"),
            (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
            (b"Connection", b"close"),
            (b"Retry-After", b"5"),
            (b"X-Orchard-Model-Version", b"2"),
        ],
        body,
    )
    assert response.status_code == 503
    assert response.body == body
    assert _header(response, b"content-type") == [b"application/problem+json"]
    assert _header(response, b"content-length") == [str(len(body)).encode()]
    assert _header(response, b"retry-after") == [b"5"]
    assert _header(response, b"x-orchard-model-version") == [b"3"]  # the routed one
    assert _header(response, b"server") == _header(response, b"date") == []
    assert _header(response, b"connection") == []


def test_an_unpinned_route_reports_the_version_the_backend_served() -> None:
    unpinned = Route("m", "http://b", "")
    by_header = _relay(unpinned, 200, [(b"X-Orchard-Model-Version", b"4")], b"{}")
    assert _header(by_header, b"x-orchard-model-version") == [b"4"]
    body = orjson.dumps({"model_name": "m", "model_version": 5, "outputs": []})
    by_body = _relay(unpinned, 200, [(b"Content-Type", b"application/json")], body)
    assert _header(by_body, b"x-orchard-model-version") == [b"5"]
    unknown = _relay(unpinned, 200, [], b"not json")
    assert _header(unknown, b"x-orchard-model-version") == []
