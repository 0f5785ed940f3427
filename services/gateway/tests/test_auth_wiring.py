"""API keys, roles and rate limits on the gateway's routes (auth on), and auth off."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchard_core import load_settings
from orchard_gateway import GatewaySettings, create_app
from orchard_gateway.auth import API_KEYS_ENV, AuthConfigError, hash_key

from .conftest import MakeGateway
from .factories import infer_body
from .fake_backend import FakeBackend

INFER = "/v2/models/credit-risk/infer"
LOAD = "/v2/repository/models/credit-risk/load"
JSON = {"Content-Type": "application/json"}
PEPPER = "pepper-for-tests"
PREDICT_SECRET = "predict-secret-0123456789"
ADMIN_SECRET = "admin-secret-0123456789"
TIGHT_SECRET = "tight-secret-0123456789"
OPEN_PATHS = ["/healthz", "/readyz", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready"]


def bearer(secret: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {secret}"}


def _keys() -> list[dict[str, Any]]:
    return [
        {
            "id": "team-a",
            "hash": hash_key(PREDICT_SECRET, PEPPER),
            "roles": ["predict"],
            "rate_per_s": 1000,
            "burst": 1000,
        },
        {
            "id": "ops",
            "hash": hash_key(ADMIN_SECRET, PEPPER),
            "roles": ["predict", "admin"],
            "rate_per_s": 1000,
            "burst": 1000,
        },
        # Two requests at once, then one every ~17 minutes: the third is refused.
        {
            "id": "tight",
            "hash": hash_key(TIGHT_SECRET, PEPPER),
            "roles": ["predict"],
            "rate_per_s": 0.001,
            "burst": 2,
        },
    ]


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps({"keys": _keys()}))
    return path


@pytest.fixture
def auth_on(keys_file: Path) -> dict[str, Any]:
    return {"auth_enabled": True, "api_keys_file": keys_file, "api_key_pepper": PEPPER}


async def test_no_key_is_a_401_with_www_authenticate(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(**auth_on) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="orchard"'
        assert "missing API key" in reply.json()["error"]
        listed = await gateway.client.get("/v2/models")
        assert listed.status_code == 401
    assert backend.seen == []


async def test_a_wrong_key_is_a_401(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(**auth_on) as gateway:
        for headers in (
            bearer("not-a-key"),
            {**JSON, "X-API-Key": "not-a-key"},
            {**JSON, "Authorization": f"Basic {PREDICT_SECRET}"},
            bearer(PREDICT_SECRET.upper()),
        ):
            reply = await gateway.client.post(INFER, content=infer_body(), headers=headers)
            assert reply.status_code == 401, headers
            assert reply.headers["www-authenticate"] == 'Bearer realm="orchard"'
            assert PREDICT_SECRET not in reply.text
    assert backend.seen == []


async def test_a_predict_key_predicts_and_gets_rate_limit_headers(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(**auth_on) as gateway:
        reply = await gateway.client.post(
            INFER, content=infer_body(), headers=bearer(PREDICT_SECRET)
        )
        assert reply.status_code == 200
        assert reply.headers["ratelimit-limit"] == "1000"
        assert reply.headers["ratelimit-remaining"] == "999"
        assert "ratelimit-reset" in reply.headers
        by_header = await gateway.client.post(
            INFER, content=infer_body(), headers={**JSON, "X-API-Key": PREDICT_SECRET}
        )
        assert by_header.status_code == 200
        for path in ("/v2/models/credit-risk", "/v2/models/credit-risk/ready", "/v2/models"):
            got = await gateway.client.get(path, headers=bearer(PREDICT_SECRET))
            assert got.status_code == 200, path
        v1 = await gateway.client.post(
            "/v1/models/digits:predict",
            content=b'{"instances": [[1, 2]]}',
            headers=bearer(PREDICT_SECRET),
        )
        assert v1.status_code == 200
    assert len(backend.seen) == 5
    # The caller's key stops at the gateway: backends never see it.
    for seen in backend.seen:
        assert "authorization" not in seen.headers
        assert "x-api-key" not in seen.headers


async def test_a_predict_key_may_not_load_or_unload_but_an_admin_key_may(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(**auth_on) as gateway:
        for action in ("load", "unload"):
            path = f"/v2/repository/models/credit-risk/{action}"
            refused = await gateway.client.post(path, headers=bearer(PREDICT_SECRET))
            assert refused.status_code == 403
            assert refused.json() == {"error": "API key 'team-a' lacks the 'admin' role"}
            allowed = await gateway.client.post(path, headers=bearer(ADMIN_SECRET))
            assert allowed.status_code == 200
        assert [s.path for s in backend.seen] == [
            "/v2/repository/models/credit-risk/load",
            "/v2/repository/models/credit-risk/unload",
        ]


async def test_a_burst_past_the_limit_is_a_429_with_retry_after(
    make_gateway: MakeGateway, backend: FakeBackend, auth_on: dict[str, Any]
) -> None:
    async with make_gateway(**auth_on) as gateway:
        headers = bearer(TIGHT_SECRET)
        first = await gateway.client.post(INFER, content=infer_body(), headers=headers)
        second = await gateway.client.post(INFER, content=infer_body(), headers=headers)
        assert (first.status_code, second.status_code) == (200, 200)
        assert (first.headers["ratelimit-remaining"], second.headers["ratelimit-remaining"]) == (
            "1",
            "0",
        )
        refused = await gateway.client.post(INFER, content=infer_body(), headers=headers)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-limit"] == "2"
        assert refused.headers["ratelimit-remaining"] == "0"
        assert "rate limit exceeded for API key 'tight'" in refused.json()["error"]
        # Other keys have their own buckets.
        other = await gateway.client.post(
            INFER, content=infer_body(), headers=bearer(PREDICT_SECRET)
        )
        assert other.status_code == 200
    assert len(backend.seen) == 3


@pytest.mark.parametrize("path", OPEN_PATHS)
async def test_health_metrics_and_server_metadata_stay_open(
    make_gateway: MakeGateway, auth_on: dict[str, Any], path: str
) -> None:
    async with make_gateway(**auth_on) as gateway:
        reply = await gateway.client.get(path)
        assert reply.status_code == 200, reply.text
        assert "ratelimit-limit" not in reply.headers


async def test_keys_come_from_the_environment_without_a_keys_file(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEYS_ENV, orjson.dumps(_keys()).decode())
    async with make_gateway(auth_enabled=True, api_key_pepper=PEPPER) as gateway:
        assert (
            await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        ).status_code == 401
        ok = await gateway.client.post(INFER, content=infer_body(), headers=bearer(PREDICT_SECRET))
        assert ok.status_code == 200


async def test_the_pepper_must_match(make_gateway: MakeGateway, keys_file: Path) -> None:
    async with make_gateway(auth_enabled=True, api_keys_file=keys_file) as gateway:
        reply = await gateway.client.post(
            INFER, content=infer_body(), headers=bearer(PREDICT_SECRET)
        )
        assert reply.status_code == 401


async def test_start_up_stops_when_auth_is_on_without_keys(
    routes_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    app = create_app(GatewaySettings(routes_file=routes_file, auth_enabled=True))
    with pytest.raises(AuthConfigError, match=API_KEYS_ENV):
        async with app.router.lifespan_context(app):
            pass


async def test_start_up_stops_on_an_unreadable_keys_file(routes_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    app = create_app(
        GatewaySettings(routes_file=routes_file, auth_enabled=True, api_keys_file=missing)
    )
    with pytest.raises(AuthConfigError, match=r"nope\.yaml"):
        async with app.router.lifespan_context(app):
            pass


async def test_with_auth_off_everything_is_open_and_start_up_warns(
    make_gateway: MakeGateway, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchard.gateway.auth")
    async with make_gateway() as gateway:
        assert gateway.settings.auth_enabled is False
        warnings = [r.getMessage() for r in caplog.records if r.name == "orchard.gateway.auth"]
        assert any("AUTHENTICATION IS DISABLED" in w for w in warnings)
        infer = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert infer.status_code == 200
        assert "ratelimit-limit" not in infer.headers
        load = await gateway.client.post(LOAD)
        assert load.status_code == 200
        # A key sent anyway is not looked at.
        sent = await gateway.client.post(INFER, content=infer_body(), headers=bearer("whatever"))
        assert sent.status_code == 200


async def test_logs_name_the_key_id_never_the_secret(
    make_gateway: MakeGateway, auth_on: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_gateway(access_log=True, **auth_on) as gateway:
        reply = await gateway.client.post(
            INFER, content=infer_body(), headers=bearer(PREDICT_SECRET)
        )
        assert reply.status_code == 200
        await gateway.client.post(LOAD, headers=bearer(PREDICT_SECRET))  # 403
        await gateway.client.post(INFER, content=infer_body(), headers=bearer("wrong-secret"))
    access = [r for r in caplog.records if r.name == "orchard.access"]
    assert [getattr(r, "api_key_id", None) for r in access[:2]] == ["team-a", "team-a"]
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert PREDICT_SECRET not in text
        assert "wrong-secret" not in text


def test_auth_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHARD_GATEWAY_AUTH_ENABLED", raising=False)
    assert load_settings(GatewaySettings).auth_enabled is False  # off unless asked for
    monkeypatch.setenv("ORCHARD_GATEWAY_AUTH_ENABLED", "true")
    monkeypatch.setenv("ORCHARD_GATEWAY_API_KEYS_FILE", "/etc/orchard/keys.yaml")
    monkeypatch.setenv("ORCHARD_GATEWAY_API_KEY_PEPPER", "s3cret-pepper")
    settings = load_settings(GatewaySettings)
    assert settings.auth_enabled is True
    assert settings.api_keys_file == Path("/etc/orchard/keys.yaml")
    assert settings.api_key_pepper.get_secret_value() == "s3cret-pepper"
    assert "s3cret-pepper" not in repr(settings)
