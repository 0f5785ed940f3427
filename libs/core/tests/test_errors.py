"""The error hierarchy maps to HTTP statuses in one table and always answers {"error": ...}."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from starlette.responses import Response

from orchard_core import ServiceSettings, create_app
from orchard_core.errors import (
    Forbidden,
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    OrchardError,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedEncoding,
    UpstreamError,
    UpstreamTimeout,
    status_for,
)
from orchard_core.requests import read_limited_body


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (Unauthorized("x"), 401),
        (Forbidden("x"), 403),
        (TooManyRequests("x"), 429),
        (PayloadTooLarge("x"), 413),
        (UnsupportedEncoding("x"), 415),
        (ModelNotFound("x"), 404),
        (ModelNotReady("x"), 503),
        (UpstreamError("x"), 502),
        (UpstreamTimeout("x"), 504),
        (InferenceError("x"), 500),
        (OrchardError("x"), 500),
    ],
)
def test_status_for_uses_the_most_specific_class(error: OrchardError, status: int) -> None:
    assert status_for(error) == status


def _client_raising(exc: Exception) -> TestClient:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise exc

    app = create_app(ServiceSettings(service_name="t"), title="t", routers=[router])
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (InvalidInput("input 'x': bad"), 400, "input 'x': bad"),
        (ModelNotFound("model 'm' not found"), 404, "model 'm' not found"),
        (ModelNotReady("model 'm' failed to load: disk"), 503, "model 'm' failed to load: disk"),
        (InferenceError("shapes do not align"), 500, "shapes do not align"),
    ],
)
def test_orchard_errors_become_json_with_their_status(
    exc: Exception, status: int, message: str
) -> None:
    response = _client_raising(exc).get("/boom")
    assert response.status_code == status
    assert response.json() == {"error": message}
    assert response.headers["content-type"] == "application/json"


def test_unexpected_exception_is_a_500_without_a_stack_trace() -> None:
    response = _client_raising(RuntimeError("secret internals at /srv/x.py line 3")).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError)"}
    assert "Traceback" not in response.text
    assert "/srv/x.py" not in response.text


def test_unknown_route_and_wrong_method_use_the_house_error_body() -> None:
    client = _client_raising(InvalidInput("unused"))
    assert client.get("/nope").json() == {"error": "Not Found"}
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "error" in response.json()


def test_request_validation_errors_are_400_with_field_names() -> None:
    router = APIRouter()

    @router.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    app = create_app(ServiceSettings(service_name="t"), title="t", routers=[router])
    response = TestClient(app).get("/items/abc")
    assert response.status_code == 400
    assert "path.item" in response.json()["error"]


def test_an_error_with_headers_answers_with_them() -> None:
    class Throttled(TooManyRequests):
        headers = {"Retry-After": "3"}

    response = _client_raising(Throttled("slow down")).get("/boom")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"error": "slow down"}


def _echo_client() -> TestClient:
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> Response:
        body = await read_limited_body(request, 1024, owner="the test", setting="LIMIT")
        return Response(body)

    return TestClient(create_app(ServiceSettings(service_name="t"), title="t", routers=[router]))


@pytest.mark.parametrize("encoding", ["gzip", "br", "identity, gzip", "GZIP"])
def test_a_compressed_body_is_415_with_what_to_do(encoding: str) -> None:
    response = _echo_client().post("/echo", content=b"{}", headers={"content-encoding": encoding})
    assert response.status_code == 415
    assert "send the body uncompressed" in response.json()["error"]


@pytest.mark.parametrize("headers", [{}, {"content-encoding": "identity"}])
def test_an_uncompressed_body_is_read(headers: dict[str, str]) -> None:
    response = _echo_client().post("/echo", content=b"{}", headers=headers)
    assert (response.status_code, response.content) == (200, b"{}")
