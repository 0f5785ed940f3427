"""Fixtures: a stand-in backend on loopback, a route table file, and gateways to test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_gateway import GatewaySettings, create_app

from .factories import routes_to, write_routes
from .fake_backend import FakeBackend


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


@pytest.fixture
async def backend() -> AsyncIterator[FakeBackend]:
    fake = await FakeBackend().start()
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
