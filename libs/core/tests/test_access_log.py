"""Access log lines: their fields, the app's own fields, and the service's middleware."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from orchard_core import ServiceSettings, create_app
from orchard_core.logs import JsonFormatter, add_log_fields, log_fields


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/models/{model}")
    async def model(model: str, request: Request) -> dict[str, str]:
        add_log_fields(request, model=model, version="2")
        add_log_fields(request, version="3", route_arm="canary")  # later values win
        return {"model": model}

    @router.get("/odd")
    async def odd(request: Request) -> dict[str, str]:
        # Names a log record reserves, and one the middleware owns: never a crash.
        add_log_fields(request, msg="boom", name="x", status=999, color="blue")
        return {}

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    return router


def _client(**app_options: Any) -> TestClient:
    settings = ServiceSettings(access_log=True)
    return TestClient(create_app(settings, title="t", routers=[_router()], **app_options))


def test_access_line_carries_the_apps_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo"))
    logger = logging.getLogger("orchard.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client = _client()
        assert client.get("/models/credit-risk", headers={"X-Request-Id": "rid-1"}).is_success
        assert client.get("/plain").is_success
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["logger"] == "orchard.access"
    assert first["request_id"] == "rid-1"
    assert first["method"] == "GET"
    assert first["path"] == "/models/credit-risk"
    assert first["route"] == "/models/{model}"
    assert first["status"] == 200
    assert first["duration_ms"] >= 0
    assert (first["model"], first["version"], first["route_arm"]) == ("credit-risk", "3", "canary")
    assert "model" not in second  # fields belong to their own request only


def test_reserved_field_names_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orchard.access"):
        assert _client().get("/odd").status_code == 200
    (record,) = [r for r in caplog.records if r.name == "orchard.access"]
    assert record.getMessage().startswith("GET /odd 200")
    assert record.__dict__["status"] == 200  # the middleware's own value wins
    assert record.__dict__["color"] == "blue"


def test_no_access_line_when_access_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(ServiceSettings(), title="t", routers=[_router()]))
    with caplog.at_level(logging.INFO, logger="orchard.access"):
        assert client.get("/plain").status_code == 200
    assert not [r for r in caplog.records if r.name == "orchard.access"]


def test_add_log_fields_takes_a_scope() -> None:
    scope: dict[str, Any] = {"type": "http"}
    assert log_fields(scope) == {}
    add_log_fields(scope, model="m")
    add_log_fields(scope, api_key_id="team-a")
    assert scope["state"]["log_fields"] == {"model": "m", "api_key_id": "team-a"}
    assert log_fields(scope) == {"model": "m", "api_key_id": "team-a"}
    assert log_fields({"state": {"log_fields": "junk"}}) == {}


class _Tag:
    """Middleware that tags answers, to show where the service's middleware runs."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {}).setdefault("order", []).append(self.name)
        await self.app(scope, receive, send)


def test_service_middleware_runs_inside_observability(caplog: pytest.LogCaptureFixture) -> None:
    cors = Middleware(CORSMiddleware, allow_origins=["https://ui.example"], allow_methods=["GET"])
    client = _client(middleware=[cors])
    with caplog.at_level(logging.INFO, logger="orchard.access"):
        preflight = client.options(
            "/plain",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "GET",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    # Answered by CORS alone, yet it has a request id and an access line.
    assert preflight.headers["x-request-id"]
    assert [r.getMessage()[:12] for r in caplog.records if r.name == "orchard.access"] == [
        "OPTIONS /pla"
    ]


def test_service_middleware_keeps_its_order() -> None:
    seen: list[str] = []

    router = APIRouter()

    @router.get("/order")
    async def order(request: Request) -> dict[str, str]:
        seen.extend(request.scope["state"]["order"])
        return {}

    app = create_app(
        ServiceSettings(),
        title="t",
        routers=[router],
        middleware=[Middleware(_Tag, name="outer"), Middleware(_Tag, name="inner")],
    )
    assert TestClient(app).get("/order").status_code == 200
    assert seen == ["outer", "inner"]
