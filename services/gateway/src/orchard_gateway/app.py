"""The gateway's app factory: core app + route table watcher + pooled upstream client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_gateway.api.router import api_router
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.routes_table import RouteTableWatcher
from orchard_gateway.settings import GatewaySettings
from orchard_gateway.upstream import Upstream, new_session

__all__ = ["create_app"]


def _version() -> str:
    try:
        return version("orchard-gateway")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def create_app(
    settings: GatewaySettings,
    *,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """Build the gateway app; its lifespan loads the route table and opens the client pool.

    Args:
        settings: validated gateway settings.
        registry: Prometheus registry (a fresh one if not given).
        span_exporter: force tracing on with this exporter (tests).

    The lifespan raises ``RouteTableError`` when the route table cannot be loaded, which
    stops the server before it accepts a request.
    """
    registry = registry if registry is not None else new_registry()
    metrics = GatewayMetrics(registry)
    watcher = RouteTableWatcher(
        settings.routes_file, metrics=metrics, poll_s=settings.routes_poll_s
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher.load()
        provider: TracerProvider | None = app.state.tracer_provider
        session = new_session(settings)
        app.state.upstream = Upstream(
            session,
            metrics,
            timeout_s=settings.upstream_timeout_s,
            tracer=provider.get_tracer("orchard_gateway") if provider is not None else None,
        )
        poller = asyncio.create_task(watcher.watch(), name="route-table-watcher")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            app.state.upstream = None
            await session.close()

    app = create_core_app(
        settings,
        title="Orchard gateway",
        version=_version(),
        routers=[api_router],
        lifespan=lifespan,
        readiness=watcher.not_ready_reason,
        registry=registry,
        span_exporter=span_exporter,
    )
    app.state.routes = watcher
    app.state.metrics = metrics
    return app
