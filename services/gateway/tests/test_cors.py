"""CORS: allowed origins only, preflights answered before auth, and nothing when unset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import MakeGateway, auth_settings
from .factories import infer_body
from .fake_backend import FakeBackend

INFER = "/v2/models/credit-risk/infer"
UI = "https://ui.example.com"
OTHER = "https://evil.example.net"
PEPPER = "cors-pepper"
SECRET = "cors-secret-0123456789"
REQUESTED_HEADERS = (
    "authorization, x-api-key, content-type, x-request-id, x-orchard-unit, traceparent"
)
EXPOSED = {
    "x-request-id",
    "x-orchard-model-version",
    "x-orchard-route-arm",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
}


@pytest.fixture
def auth_on(tmp_path: Path) -> dict[str, Any]:
    return auth_settings(tmp_path, "browser-app", SECRET, PEPPER)


def preflight(
    origin: str, method: str = "POST", headers: str = REQUESTED_HEADERS
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def _split(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(cors_origins=[UI, "http://localhost:5173"], **auth_on) as gateway:
        for method in ("GET", "POST", "DELETE"):
            reply = await gateway.client.options(INFER, headers=preflight(UI, method))
            assert reply.status_code == 200
            assert reply.headers["access-control-allow-origin"] == UI
            assert _split(reply.headers["access-control-allow-methods"]) == {
                "get",
                "post",
                "delete",
                "options",
            }
            assert _split(reply.headers["access-control-allow-headers"]) >= _split(
                REQUESTED_HEADERS
            )
            assert "origin" in _split(reply.headers["vary"])
            assert reply.headers["x-request-id"]  # still logged and traced like any request
    assert backend.seen == []  # a preflight never reaches a backend


async def test_a_preflight_from_another_origin_gets_no_allow_origin(
    make_gateway: MakeGateway, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(cors_origins=[UI], **auth_on) as gateway:
        other = await gateway.client.options(INFER, headers=preflight(OTHER))
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        # An allowed origin asking for a header outside the list is refused too.
        odd = await gateway.client.options(INFER, headers=preflight(UI, headers="x-secret"))
        assert odd.status_code == 400


async def test_answers_to_an_allowed_origin_expose_our_headers(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(cors_origins=[UI], **auth_on) as gateway:
        ok = await gateway.client.post(
            INFER,
            content=infer_body(),
            headers={"Origin": UI, "Authorization": f"Bearer {SECRET}"},
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == UI
        assert _split(ok.headers["access-control-expose-headers"]) == EXPOSED
        assert "access-control-allow-credentials" not in ok.headers
        # A refusal is readable by the page too, so it can show why.
        refused = await gateway.client.post(INFER, content=infer_body(), headers={"Origin": UI})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == UI
        other = await gateway.client.post(
            INFER,
            content=infer_body(),
            headers={"Origin": OTHER, "Authorization": f"Bearer {SECRET}"},
        )
        assert other.status_code == 200  # CORS binds browsers, not the server
        assert "access-control-allow-origin" not in other.headers


async def test_no_origins_no_cors_headers_at_all(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async with make_gateway() as gateway:
        assert gateway.settings.cors_origins == []
        reply = await gateway.client.options(INFER, headers=preflight(UI))
        assert reply.status_code == 405  # no CORS: OPTIONS is just a method nobody serves
        ok = await gateway.client.post(INFER, content=infer_body(), headers={"Origin": UI})
        assert ok.status_code == 200
        for answer in (reply, ok):
            assert not [h for h in answer.headers if h.startswith("access-control-")]
