"""Access logs: on by default, one JSON line per request with request id, key id, model,
version, status and latency, and never a credential in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchard_core.logs import JsonFormatter
from orchard_gateway import GatewaySettings
from orchard_gateway.auth import hash_key

from .conftest import MakeGateway, auth_settings
from .factories import infer_body
from .fake_backend import FakeBackend

INFER = "/v2/models/credit-risk/infer"
PEPPER = "access-log-pepper-7f3a"
SECRET = "access-log-secret-0123456789"
WRONG = "not-a-key-9876543210"


@pytest.fixture
def auth_on(tmp_path: Path) -> dict[str, Any]:
    return auth_settings(tmp_path, "team-a", SECRET, PEPPER)


@pytest.fixture
def json_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every log line of every logger, at DEBUG, formatted as in production (JSON)."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_access_logging_is_on_by_default() -> None:
    assert GatewaySettings().access_log is True


async def test_access_line_has_request_key_model_version_status_latency(
    make_gateway: MakeGateway,
    backend: FakeBackend,
    auth_on: dict[str, Any],
    json_logs: io.StringIO,
) -> None:
    async with make_gateway(**auth_on) as gateway:
        assert gateway.settings.access_log  # not set by the test: the default
        reply = await gateway.client.post(
            INFER,
            content=infer_body(),
            headers={"Authorization": f"Bearer {SECRET}", "X-Request-Id": "rid-42"},
        )
        assert reply.status_code == 200
    access = [line for line in lines(json_logs) if line["logger"] == "orchard.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "rid-42"
    assert line["api_key_id"] == "team-a"
    assert line["model"] == "credit-risk"
    assert line["version"] == "1"
    assert line["status"] == 200
    assert line["method"] == "POST"
    assert line["path"] == INFER
    assert line["route"] == "/v2/models/{model}/infer"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] > 0
    assert line["service"] == "gateway"


async def test_no_credential_ever_reaches_a_log_line(
    make_gateway: MakeGateway,
    backend: FakeBackend,
    auth_on: dict[str, Any],
    json_logs: io.StringIO,
) -> None:
    async with make_gateway(**auth_on) as gateway:
        client = gateway.client
        body = infer_body()
        bearer = await client.post(
            INFER, content=body, headers={"Authorization": f"Bearer {SECRET}"}
        )
        x_api_key = await client.post(INFER, content=body, headers={"X-API-Key": SECRET})
        wrong = await client.post(INFER, content=body, headers={"Authorization": f"Bearer {WRONG}"})
        wrong_x = await client.post(INFER, content=body, headers={"X-API-Key": WRONG})
        garbled = await client.post(
            INFER, content=body, headers={"Authorization": f"Basic {SECRET}"}
        )
        assert [r.status_code for r in (bearer, x_api_key, wrong, wrong_x, garbled)] == [
            200,
            200,
            401,
            401,
            401,
        ]
    text = json_logs.getvalue()
    assert text  # the capture works: there are lines to look at
    for secret in (SECRET, WRONG, PEPPER, hash_key(SECRET, PEPPER)):
        assert secret not in text
    assert "Bearer" not in text
    access = [line for line in lines(json_logs) if line["logger"] == "orchard.access"]
    assert [line["status"] for line in access] == [200, 200, 401, 401, 401]
    assert [line.get("api_key_id") for line in access] == ["team-a", "team-a", None, None, None]
    # The backend never sees the caller's credential either (auth on strips it).
    assert all(
        "authorization" not in seen.headers and "x-api-key" not in seen.headers
        for seen in backend.seen
    )
