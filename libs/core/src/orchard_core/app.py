"""The app factory every Orchard service is built with."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from orchard_core.errors import error_response, install_error_handlers
from orchard_core.metrics import HttpMetrics, metrics_response, new_registry
from orchard_core.middleware import ObservabilityMiddleware
from orchard_core.responses import json_response
from orchard_core.settings import ServiceSettings
from orchard_core.tracing import setup_tracing

__all__ = ["Lifespan", "ReadinessCheck", "cancel_all", "create_app", "package_version"]

_log = logging.getLogger("orchard.app")

#: Returns None when ready, else the reason it is not (shown by /readyz).
ReadinessCheck = Callable[[], "str | Awaitable[str | None] | None"]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (``0.0.0`` from a source tree not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel a lifespan's background tasks and wait until each has stopped."""
    running = list(tasks)
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str = "0.1.0",
    routers: Iterable[APIRouter] = (),
    lifespan: Lifespan | None = None,
    readiness: ReadinessCheck | None = None,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
    middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """Build a FastAPI app with Orchard's health, metrics, errors, logging and tracing.

    Args:
        settings: the service's validated settings (``service_name`` names its metrics).
        title: OpenAPI title.
        version: the service's version, shown in OpenAPI.
        routers: the service's routers, included in order.
        lifespan: the service's own start-up/shut-down, run inside the core lifespan.
        readiness: what ``/readyz`` asks; liveness (``/healthz``) is always just "alive".
        registry: Prometheus registry (a fresh one if not given); kept on ``app.state``.
        span_exporter: force tracing on with this exporter (tests); otherwise tracing follows
            the ``OTEL_EXPORTER_OTLP_*`` environment variables.
        middleware: the service's own middleware (e.g. CORS), outermost first. It runs inside
            the observability middleware, so what it answers alone (a CORS preflight) still
            gets a request id, an access log line and RED metrics.
    """
    registry = registry if registry is not None else new_registry()

    @asynccontextmanager
    async def core_lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            provider = getattr(app.state, "tracer_provider", None)
            if provider is not None:
                provider.shutdown()

    app = FastAPI(title=title, version=version, lifespan=core_lifespan)
    app.state.settings = settings
    app.state.registry = registry
    install_error_handlers(app)
    # add_middleware puts each one outside those added before it: innermost first.
    for item in reversed(middleware):
        app.add_middleware(item.cls, *item.args, **item.kwargs)
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=HttpMetrics(settings.service_name, registry),
        access_log=settings.access_log,
    )
    app.state.tracer_provider = setup_tracing(
        app, settings.service_name, service_version=version, exporter=span_exporter
    )

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    async def healthz() -> Response:
        """Liveness: the process is up and serving HTTP."""
        return json_response({"status": "alive"})

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """Readiness: the service can do its job now."""
        reason = await _not_ready_reason(readiness)
        if reason is not None:
            return error_response(503, f"not ready: {reason}")
        return json_response({"status": "ready"})

    @app.get("/metrics", tags=["health"])
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (OpenMetrics, with exemplars, when asked for)."""
        return metrics_response(registry, request.headers.get("accept"))

    for router in routers:
        app.include_router(router)
    return app


async def _not_ready_reason(readiness: ReadinessCheck | None) -> str | None:
    if readiness is None:
        return None
    try:
        result = readiness()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # a readiness probe must answer, not crash
        _log.warning("readiness check failed: %s", exc)
        return f"readiness check failed ({type(exc).__name__})"
    return result if isinstance(result, str) else None
