"""The prediction fast path answers exactly as FastAPI's routes do, and only where it should.

Each case is sent to two fresh gateways: one as built (``POST .../infer`` answered by
``InferFastPath``) and one whose dependency overrides send every request through FastAPI's
router and dependency resolution. Their answers (status, raw headers, body), access log lines,
RED metrics and server spans must be the same.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Message

from orchard_gateway.auth import hash_key
from orchard_gateway.deps import predict_call

from ..conftest import Gateway, MakeGateway
from ..factories import infer_body, infer_payload, write_routes
from ..fake_backend import Canned, FakeBackend

INFER = "/v2/models/credit-risk/infer"
INFER_VERSION = "/v2/models/credit-risk/versions/1/infer"
PEPPER = "pepper-for-fast-path"
PREDICT = "predict-secret-0123456789"
ADMIN_ONLY = "admin-only-secret-0123456789"
TIGHT = "tight-secret-0123456789"
ORIGIN = "https://ui.example"
MAX_BODY = 4096
ROOMY = {"rate_per_s": 1000, "burst": 1000}
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    body: bytes = b""
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes
    through_fastapi: bool  # FastAPI's inner middleware (so its router) saw the request


def _key(secret: str = PREDICT, *more: tuple[bytes, bytes]) -> Headers:
    return [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {secret}".encode()),
        *more,
    ]


def _post(path: str, body: bytes, headers: Headers | None = None) -> Sent:
    headers = _key() if headers is None else headers
    if not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    return Sent("POST", path, body, headers)


CASES: dict[str, list[Sent]] = {
    "ok": [_post(INFER, infer_body())],
    "ok, a version": [_post(INFER_VERSION, infer_body())],
    "ok, a unit and an origin": [
        _post(
            INFER,
            infer_body(),
            _key(PREDICT, (b"x-orchard-unit", b"u-1"), (b"origin", ORIGIN.encode())),
        )
    ],
    "ok, no content type": [
        _post(INFER, infer_body(), [(b"authorization", b"Bearer " + PREDICT.encode())])
    ],
    "no key": [_post(INFER, infer_body(), [(b"content-type", b"application/json")])],
    "wrong key": [_post(INFER, infer_body(), _key("not-a-key-0123456789"))],
    "no predict role": [_post(INFER, infer_body(), _key(ADMIN_ONLY))],
    "rate limited": [_post(INFER, infer_body(), _key(TIGHT)) for _ in range(2)],
    "unknown model": [_post("/v2/models/nope/infer", infer_body())],
    "unknown version": [_post("/v2/models/credit-risk/versions/9/infer", infer_body())],
    "backend unreachable": [_post("/v2/models/down/infer", infer_body())],
    "backend error relayed": [_post("/v2/models/broken/infer", infer_body())],
    "empty body": [_post(INFER, b"")],
    "not json": [_post(INFER, b"{not json")],
    "not an object": [_post(INFER, b"[1, 2]")],
    "no inputs": [_post(INFER, orjson.dumps({"inputs": []}))],
    "shape mismatch": [_post(INFER, infer_body(shape=[3, 3]))],
    "bad datatype": [_post(INFER, infer_body(datatype="FP128"))],
    "bad data": [_post(INFER, infer_body(data=["a", "b", "c", "d", "e", "f"]))],
    "bad parameters": [_post(INFER, orjson.dumps({**infer_payload(), "parameters": [1]}))],
    "declared too large": [_post(INFER, b"{}", [*_key(), (b"content-length", b"999999")])],
    "too large, undeclared": [Sent("POST", INFER, b" " * (MAX_BODY + 1), _key())],
    "bad content-length": [_post(INFER, infer_body(), [*_key(), (b"content-length", b"12x")])],
    "compressed body": [_post(INFER, infer_body(), [*_key(), (b"content-encoding", b"gzip")])],
    "trailing slash": [_post(INFER + "/", infer_body())],
    "encoded slash": [_post("/v2/models/credit%2Frisk/infer", infer_body())],
    "HEAD": [Sent("HEAD", INFER, b"", _key())],
    "GET": [Sent("GET", INFER_VERSION, b"", _key())],
}


async def _send(app: FastAPI, sent: Sent) -> Answer:
    raw_path, _, query = sent.path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": sent.method,
        "scheme": "http",
        "path": raw_path.replace("%2F", "/"),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"gateway"), (b"x-request-id", b"req-fixed"), *sent.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages: list[Message] = []
    delivered = False
    answered = asyncio.Event()

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            await answered.wait()
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": sent.body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Answer(
        start["status"], list(start["headers"]), body, "fastapi_middleware_astack" in scope
    )


@pytest.fixture
def gateway_settings(tmp_path: Path, backend: FakeBackend, refused_url: str) -> dict[str, Any]:
    keys = [
        {"id": "team-a", "hash": hash_key(PREDICT, PEPPER), "roles": ["predict"]} | ROOMY,
        {"id": "ops", "hash": hash_key(ADMIN_ONLY, PEPPER), "roles": ["admin"]} | ROOMY,
        # One request at once, then one every ~17 minutes: the second is refused.
        {
            "id": "tight",
            "hash": hash_key(TIGHT, PEPPER),
            "roles": ["predict"],
            "rate_per_s": 0.001,
            "burst": 1,
        },
    ]
    keys_file = tmp_path / "keys.json"
    keys_file.write_bytes(orjson.dumps({"keys": keys}))
    routes = {
        "credit-risk": {"backend": backend.url, "version": "1"},
        "broken": {"backend": backend.url, "version": "1"},
        "down": {"backend": refused_url, "version": "1"},
    }
    backend.canned[b"/v2/models/broken/versions/1/infer"] = Canned(
        500, b'{"error":"model failed"}', headers={"X-Backend": "said-so"}
    )
    return {
        "routes_file": write_routes(tmp_path / "fast-path-routes.yaml", routes),
        "auth_enabled": True,
        "api_keys_file": keys_file,
        "api_key_pepper": PEPPER,
        "max_body_bytes": MAX_BODY,
        "cors_origins": [ORIGIN],
        "access_log": True,
        "retry_max_attempts": 1,
    }


@dataclass
class Seen:
    answers: list[Answer]
    access: list[dict[str, Any]]
    metrics: dict[str, float]
    spans: list[tuple[str, SpanKind, dict[str, Any]]]


_ACCESS_FIELDS = ("method", "path", "status", "route", "model", "version", "route_arm")


async def _run(
    make_gateway: MakeGateway,
    settings: dict[str, Any],
    sent: list[Sent],
    caplog: pytest.LogCaptureFixture,
    *,
    through_fastapi: bool,
) -> Seen:
    exporter = InMemorySpanExporter()
    caplog.clear()
    async with make_gateway(span_exporter=exporter, **settings) as gateway:
        if through_fastapi:
            # Resolved by FastAPI as before; any override sends the infer paths there.
            gateway.app.dependency_overrides[predict_call] = predict_call
        answers = [await _send(gateway.app, one) for one in sent]
        gateway.app.state.tracer_provider.force_flush()
        metrics = _http_metrics(gateway)
    access = [
        {name: getattr(r, name, None) for name in (*_ACCESS_FIELDS, "api_key_id")}
        for r in caplog.records
        if r.name == "orchard.access"
    ]
    spans = [
        (s.name, s.kind, dict(s.attributes or {}))
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER
    ]
    return Seen(answers, access, metrics, spans)


def _http_metrics(gateway: Gateway) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in gateway.registry.collect():
        if family.name.startswith("orchard_gateway_http_requests"):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.parametrize("case", list(CASES))
async def test_the_fast_path_answers_as_fastapi_does(
    case: str,
    make_gateway: MakeGateway,
    gateway_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orchard.access")
    sent = CASES[case]
    fast = await _run(make_gateway, gateway_settings, sent, caplog, through_fastapi=False)
    slow = await _run(make_gateway, gateway_settings, sent, caplog, through_fastapi=True)

    assert all(a.through_fastapi for a in slow.answers)
    for fast_answer, slow_answer in zip(fast.answers, slow.answers, strict=True):
        assert (fast_answer.status, fast_answer.headers, fast_answer.body) == (
            slow_answer.status,
            slow_answer.headers,
            slow_answer.body,
        )
    assert fast.access == slow.access
    assert len(fast.access) == len(sent)
    assert fast.metrics == slow.metrics
    assert fast.spans == slow.spans
    # Every POST to an infer route took the fast path; anything else went on to FastAPI.
    on_fast_path = [
        s.method == "POST" and a["route"] != "unmatched"
        for s, a in zip(sent, fast.access, strict=True)
    ]
    assert [not a.through_fastapi for a in fast.answers] == on_fast_path


async def test_other_methods_on_the_infer_paths_are_405(gateway: Gateway) -> None:
    for path in (INFER, INFER_VERSION):
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            reply = await gateway.client.request(method, path)
            assert reply.status_code == 405, (method, path)
            assert reply.headers["allow"] == "POST"


async def test_the_openapi_document_still_lists_the_infer_routes(gateway: Gateway) -> None:
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    for path in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
        assert list(paths[path]) == ["post"]
        assert paths[path]["post"]["summary"]
