"""Retries and circuit breakers on the gateway's upstream calls, end to end on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from orchard_core import load_settings
from orchard_gateway import GatewaySettings

from .conftest import Gateway, MakeGateway
from .factories import infer_body, routes_to, write_routes
from .fake_backend import Canned, FakeBackend

INFER = "/v2/models/credit-risk/infer"
BACKEND_PATH = "/v2/models/credit-risk/versions/1/infer"
JSON = {"Content-Type": "application/json"}
BUSY = Canned(503, b'{"error": "busy"}', headers={"Retry-After": "1"})


class ScriptedBackend(FakeBackend):
    """Answers the next canned replies in ``script`` in turn, then as ``FakeBackend`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Canned] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.script:
            self.canned[request.raw_path] = self.script.pop(0)
        else:
            self.canned.pop(request.raw_path, None)
        return await super()._handle(request)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedBackend, Path]]:
    fake = ScriptedBackend()
    await fake.start()
    try:
        yield fake, write_routes(tmp_path / "scripted.yaml", routes_to(fake.url, "credit-risk"))
    finally:
        await fake.stop()


def retries(gateway: Gateway) -> float:
    return gateway.metric("orchard_gateway_upstream_retries_total", model="credit-risk")


def calls(gateway: Gateway, code: str) -> float:
    return gateway.metric(
        "orchard_gateway_upstream_requests_total", model="credit-risk", version="1", code=code
    )


def circuit(gateway: Gateway, backend: str) -> float | None:
    return gateway.registry.get_sample_value("orchard_gateway_circuit_state", {"backend": backend})


async def test_a_503_then_200_is_a_200_after_one_retry(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path]
) -> None:
    backend, routes = scripted
    backend.script = [BUSY]
    async with make_gateway(routes_file=routes) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 200
        assert reply.json()["model_version"] == "1"
        assert [s.path for s in backend.seen] == [BACKEND_PATH, BACKEND_PATH]
        # The same request id both times: one caller request, tried twice.
        assert len({s.headers["X-Request-Id"] for s in backend.seen}) == 1
        assert retries(gateway) == 1
        assert calls(gateway, "200") == 1
        assert circuit(gateway, backend.url) == 0


async def test_a_backend_that_stays_503_gets_max_attempts_then_its_503_comes_back(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path]
) -> None:
    backend, routes = scripted
    backend.script = [BUSY] * 10
    async with make_gateway(routes_file=routes, retry_max_attempts=3) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 503
        assert reply.json() == {"error": "busy"}  # the backend's own answer, unchanged
        assert reply.headers["retry-after"] == "1"
        assert len(backend.seen) == 3
        assert retries(gateway) == 2


@pytest.mark.parametrize("status", [500, 502, 400])
async def test_other_errors_are_not_retried(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path], status: int
) -> None:
    backend, routes = scripted
    backend.script = [Canned(status, b'{"error": "model failed"}')]
    async with make_gateway(routes_file=routes) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == status
        assert reply.json() == {"error": "model failed"}
        assert len(backend.seen) == 1
        assert retries(gateway) == 0


async def test_retries_off_with_one_attempt(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path]
) -> None:
    backend, routes = scripted
    backend.script = [BUSY]
    async with make_gateway(routes_file=routes, retry_max_attempts=1) as gateway:
        reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert reply.status_code == 503
        assert len(backend.seen) == 1


async def test_a_down_backend_opens_its_circuit_then_calls_fail_fast(
    tmp_path: Path, make_gateway: MakeGateway, refused_url: str
) -> None:
    routes = write_routes(tmp_path / "down.yaml", routes_to(refused_url, "credit-risk"))
    settings = {"routes_file": routes, "breaker_failure_threshold": 5, "breaker_open_s": 30}
    async with make_gateway(**settings) as gateway:
        # 3 tries, then 2 more: the fifth consecutive failure opens the circuit.
        for _ in range(2):
            reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
            assert reply.status_code == 502
            assert "is unreachable" in reply.json()["error"]
        assert retries(gateway) == 3
        assert circuit(gateway, refused_url) == 2
        started = time.perf_counter()
        fast = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert time.perf_counter() - started < 0.5
        assert fast.status_code == 503
        assert 1 <= int(fast.headers["retry-after"]) <= 30
        assert f"backend {refused_url} is failing; circuit open" in fast.json()["error"]
        assert calls(gateway, "circuit_open") == 1
        assert retries(gateway) == 3


async def test_an_open_circuit_does_not_touch_the_backend_and_recovers(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path]
) -> None:
    backend, routes = scripted
    backend.script = [BUSY, BUSY]
    settings = {
        "routes_file": routes,
        "retry_max_attempts": 1,
        "breaker_failure_threshold": 2,
        "breaker_open_s": 0.2,
    }
    async with make_gateway(**settings) as gateway:
        for _ in range(2):
            reply = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
            assert reply.json() == {"error": "busy"}
        assert circuit(gateway, backend.url) == 2
        refused = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "circuit open" in refused.json()["error"]
        assert len(backend.seen) == 2  # the open circuit kept the call away from it
        await asyncio.sleep(0.25)
        # Half-open: one probe goes through; the backend is well again, so it closes.
        healed = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert healed.status_code == 200
        assert len(backend.seen) == 3
        assert circuit(gateway, backend.url) == 0


async def test_breakers_are_per_backend(
    tmp_path: Path,
    make_gateway: MakeGateway,
    refused_url: str,
    backend: FakeBackend,
) -> None:
    models = {**routes_to(refused_url, "credit-risk"), **routes_to(backend.url, "digits")}
    routes = write_routes(tmp_path / "mixed.yaml", models)
    settings = {"routes_file": routes, "retry_max_attempts": 1, "breaker_failure_threshold": 1}
    async with make_gateway(**settings) as gateway:
        down = await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        assert down.status_code == 502
        assert (
            await gateway.client.post(INFER, content=infer_body(), headers=JSON)
        ).status_code == 503
        fine = await gateway.client.post(
            "/v2/models/digits/infer", content=infer_body(), headers=JSON
        )
        assert fine.status_code == 200
        assert circuit(gateway, refused_url) == 2
        assert circuit(gateway, backend.url) == 0


async def test_a_loading_models_503_readiness_is_an_answer_not_a_failure(
    make_gateway: MakeGateway, scripted: tuple[ScriptedBackend, Path]
) -> None:
    backend, routes = scripted
    loading = Canned(503, b'{"error": "model is loading", "ready": false}')
    backend.script = [loading] * 4
    settings = {"routes_file": routes, "breaker_failure_threshold": 2}
    async with make_gateway(**settings) as gateway:
        for path in ("/v2/models/credit-risk/ready", "/v1/models/credit-risk") * 2:
            reply = await gateway.client.get(path)
            assert reply.status_code == 503
            assert reply.json()["ready"] is False
        assert len(backend.seen) == 4  # one try each: not retried
        assert retries(gateway) == 0
        assert circuit(gateway, backend.url) == 0  # and not held against the backend
        ready = await gateway.client.get("/v2/models/credit-risk/ready")
        assert ready.status_code == 200


def test_resilience_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RETRY_MAX_ATTEMPTS",
        "RETRY_BUDGET_RATIO",
        "UPSTREAM_PER_TRY_TIMEOUT_S",
        "BREAKER_FAILURE_THRESHOLD",
        "BREAKER_OPEN_S",
    ):
        monkeypatch.delenv(f"ORCHARD_GATEWAY_{name}", raising=False)
    defaults = load_settings(GatewaySettings)
    assert defaults.retry_max_attempts == 3
    assert defaults.retry_budget_ratio == 0.2
    assert defaults.upstream_per_try_timeout_s == 10.0
    assert defaults.breaker_failure_threshold == 5
    assert defaults.breaker_open_s == 5.0
    monkeypatch.setenv("ORCHARD_GATEWAY_RETRY_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ORCHARD_GATEWAY_BREAKER_OPEN_S", "2.5")
    settings = load_settings(GatewaySettings)
    assert (settings.retry_max_attempts, settings.breaker_open_s) == (1, 2.5)
