"""Fixtures: stand-in backends and evaluation on loopback, a route table file, and gateways to
test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_gateway import GatewaySettings, create_app
from orchard_gateway.auth import hash_key

from .factories import routes_to, write_routes
from .fake_backend import FakeBackend
from .fake_evaluation import FakeEvaluation


@dataclass
class Gateway:
    """A running in-process gateway and what tests look at."""

    app: FastAPI
    client: httpx2.AsyncClient
    registry: CollectorRegistry
    settings: GatewaySettings

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


MakeGateway = Callable[..., AbstractAsyncContextManager[Gateway]]
MakeBackend = Callable[[], Awaitable[FakeBackend]]


@pytest.fixture
async def make_backend() -> AsyncIterator[MakeBackend]:
    """Start stand-in backends on demand; each one started is stopped at teardown."""
    async with AsyncExitStack() as stack:

        async def start() -> FakeBackend:
            fake = await FakeBackend().start()
            stack.push_async_callback(fake.stop)
            return fake

        yield start


@pytest.fixture
async def backend(make_backend: MakeBackend) -> FakeBackend:
    return await make_backend()


@pytest.fixture
async def evaluation() -> AsyncIterator[FakeEvaluation]:
    fake = await FakeEvaluation().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def routes_file(tmp_path: Path, backend: FakeBackend) -> Path:
    path: Path = write_routes(
        tmp_path / "routes.yaml", routes_to(backend.url, "credit-risk", "digits")
    )
    return path


@pytest.fixture
def make_gateway(routes_file: Path) -> MakeGateway:
    """Start a gateway (lifespan included) with settings overrides; an async context manager."""

    @asynccontextmanager
    async def start(
        span_exporter: SpanExporter | None = None, **overrides: Any
    ) -> AsyncIterator[Gateway]:
        values: dict[str, Any] = {
            "routes_file": routes_file,
            "routes_poll_s": 0.05,
            "upstream_timeout_s": 10.0,
            "log_json": False,
        }
        values.update(overrides)
        settings = GatewaySettings(**values)
        registry = new_registry()
        app = create_app(settings, registry=registry, span_exporter=span_exporter)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield Gateway(app, client, registry, settings)

    return start


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> AsyncIterator[Gateway]:
    async with make_gateway() as running:
        yield running


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL where nothing listens: the port is bound but never accepts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def auth_settings(tmp_path: Path, key_id: str, secret: str, pepper: str) -> dict[str, Any]:
    """Gateway settings with auth on and one predict key (``key_id``, ``secret``), its rate
    limit high enough never to get in the way; the key file is written under ``tmp_path``."""
    key = {
        "id": key_id,
        "hash": hash_key(secret, pepper),
        "roles": ["predict"],
        "rate_per_s": 1000,
        "burst": 1000,
    }
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps({"keys": [key]}))
    return {"auth_enabled": True, "api_keys_file": path, "api_key_pepper": pepper}
