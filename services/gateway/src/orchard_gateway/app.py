"""The gateway's app factory: core app + route table watcher + pooled upstream client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_gateway.api.router import api_router
from orchard_gateway.auth import API_KEY_PEPPER_ENV, KeyStore, RateLimiter
from orchard_gateway.deps import KeyIdLogFilter
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.predictor import Predictor
from orchard_gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
    RetryBudget,
    RetryPolicy,
)
from orchard_gateway.routes_table import RouteTableWatcher
from orchard_gateway.settings import GatewaySettings
from orchard_gateway.upstream import Upstream, new_session

__all__ = ["create_app"]


def _version() -> str:
    try:
        return version("orchard-gateway")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


_BREAKER_GAUGE: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}
# Loggers whose lines may be about a request; they get the caller's API key id.
_KEY_ID_LOGGERS = ("orchard.access", "orchard.errors", "orchard.gateway")


def key_store(settings: GatewaySettings) -> KeyStore:
    """The API keys: disabled (with a loud warning), from the keys file, or from the env.

    Raises:
        AuthConfigError: auth is on and the keys cannot be read or are malformed.
    """
    if not settings.auth_enabled:
        return KeyStore.disabled()
    pepper = settings.api_key_pepper.get_secret_value()
    if settings.api_keys_file is not None:
        return KeyStore.from_file(settings.api_keys_file, pepper=pepper)
    return KeyStore.from_env({**os.environ, API_KEY_PEPPER_ENV: pepper})


def _breakers(settings: GatewaySettings, metrics: GatewayMetrics) -> CircuitBreakers:
    def on_transition(backend: str, old: BreakerState, new: BreakerState) -> None:
        metrics.circuit(backend, _BREAKER_GAUGE[new])

    def make(backend: str) -> CircuitBreaker:
        metrics.circuit(backend, _BREAKER_GAUGE[BreakerState.CLOSED])
        return CircuitBreaker(
            backend,
            failure_threshold=settings.breaker_failure_threshold,
            open_s=settings.breaker_open_s,
            max_open_s=max(60.0, settings.breaker_open_s),
            on_transition=on_transition,
        )

    return CircuitBreakers(make)


def _install_key_id_filter() -> None:
    for name in _KEY_ID_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, KeyIdLogFilter) for f in logger.filters):
            logger.addFilter(KeyIdLogFilter())


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

    The lifespan raises ``RouteTableError`` when the route table cannot be loaded, and
    ``AuthConfigError`` when auth is on and the API keys cannot be, which stops the server
    before it accepts a request.
    """
    registry = registry if registry is not None else new_registry()
    metrics = GatewayMetrics(registry)
    watcher = RouteTableWatcher(
        settings.routes_file, metrics=metrics, poll_s=settings.routes_poll_s
    )

    breakers = _breakers(settings, metrics)
    budget = RetryBudget(ratio=settings.retry_budget_ratio)
    policy = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        per_try_timeout_s=min(settings.upstream_per_try_timeout_s, settings.upstream_timeout_s),
        total_deadline_s=settings.upstream_timeout_s,
    )
    _install_key_id_filter()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.key_store = key_store(settings)
        watcher.load()
        provider: TracerProvider | None = app.state.tracer_provider
        session = new_session(settings)
        app.state.upstream = Upstream(
            session,
            metrics,
            timeout_s=settings.upstream_timeout_s,
            tracer=provider.get_tracer("orchard_gateway") if provider is not None else None,
            policy=policy,
            budget=budget,
            breakers=breakers,
            strip_credentials=settings.auth_enabled,
        )
        app.state.predictor = Predictor(watcher, app.state.upstream)
        poller = asyncio.create_task(watcher.watch(), name="route-table-watcher")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            app.state.predictor = None
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
    app.state.rate_limiter = RateLimiter()
    app.state.breakers = breakers
    return app
