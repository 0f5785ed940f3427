"""The gateway's app factory: core app + route table watcher + pooled upstream client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_core.app import package_version
from orchard_gateway.api.fast_path import InferFastPath
from orchard_gateway.api.router import API_ROUTERS
from orchard_gateway.auth import API_KEY_PEPPER_ENV, KeyStore, RateLimiter
from orchard_gateway.batch import BatchMetrics
from orchard_gateway.deps import KeyIdLogFilter
from orchard_gateway.evaluation_sinks import EvaluationSinks
from orchard_gateway.job_store import JobStore
from orchard_gateway.jobs import JobRunner
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.predictor import Predictor
from orchard_gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
    RetryBudget,
    RetryPolicy,
)
from orchard_gateway.route_sources import FileRouteSource, HttpRouteSource, RouteTableWatcher
from orchard_gateway.settings import GatewaySettings
from orchard_gateway.upstream import Upstream, new_session

__all__ = ["create_app"]


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


# CORS: what a browser on an allowed origin may send, and read back from our answers.
_CORS_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
_CORS_REQUEST_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "X-Request-Id",
    "X-Orchard-Unit",
    "traceparent",
)
_CORS_EXPOSED_HEADERS = (
    "X-Request-Id",
    "X-Orchard-Model-Version",
    "X-Orchard-Route-Arm",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)


def _cors(settings: GatewaySettings) -> list[Middleware]:
    """CORS for the allowed origins only, none at all when there are none. It answers
    preflights itself, so they never reach auth (a browser sends no key with them)."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=list(_CORS_METHODS),
            allow_headers=list(_CORS_REQUEST_HEADERS),
            expose_headers=list(_CORS_EXPOSED_HEADERS),
        )
    ]


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
    batch_metrics = BatchMetrics(registry)
    file_source = FileRouteSource(settings.routes_file)
    watcher = RouteTableWatcher(file_source, metrics=metrics, poll_s=settings.routes_poll_s)

    breakers = _breakers(settings, metrics)
    budget = RetryBudget(
        ratio=settings.retry_budget_ratio, min_per_s=settings.retry_budget_min_per_s
    )
    policy = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        per_try_timeout_s=min(settings.upstream_per_try_timeout_s, settings.upstream_timeout_s),
        total_deadline_s=settings.upstream_timeout_s,
    )
    _install_key_id_filter()
    sinks = EvaluationSinks(settings, registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.key_store = key_store(settings)
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
        poller: asyncio.Task[None] | None = None
        try:
            if settings.routes_url is not None:
                # Retraining may be down at start-up: not ready until its first table arrives.
                watcher.source = HttpRouteSource(settings.routes_url, session)
                await watcher.refresh_or_keep()
            else:
                await watcher.refresh()  # a missing or invalid file stops the gateway here
            sinks.start()  # payload logging and feedback, when evaluation_url is set
            app.state.event_sink = sinks.events
            app.state.feedback_sink = sinks.feedback
            app.state.predictor = Predictor(
                watcher,
                app.state.upstream,
                metrics,
                events=sinks.events,
                mirror_max_in_flight=settings.mirror_max_in_flight,
            )
            poller = asyncio.create_task(watcher.watch(), name="route-table-watcher")
            # Batch jobs left queued or running by the last stop go on from where they were.
            jobs = JobRunner(
                JobStore(settings.jobs_dir),
                app.state.predictor,
                batch_metrics,
                max_concurrent=settings.jobs_max_concurrent,
                max_bytes=settings.jobs_max_bytes,
                chunk_size=settings.batch_chunk_size,
            )
            await jobs.start()
            app.state.jobs = jobs
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            jobs_running: JobRunner | None = getattr(app.state, "jobs", None)
            app.state.jobs = None
            if jobs_running is not None:
                await jobs_running.stop()  # between chunks, as on disk: resumed at next start
            predictor = getattr(app.state, "predictor", None)
            if predictor is not None:
                await predictor.aclose()
            app.state.predictor = None
            # No request offers anything now: flush what is queued, within the grace period.
            app.state.event_sink = app.state.feedback_sink = None
            await sinks.aclose(settings.shutdown_grace_s)
            app.state.upstream = None
            await session.close()

    app = create_core_app(
        settings,
        title="Orchard gateway",
        version=package_version("orchard-gateway"),
        routers=API_ROUTERS,
        lifespan=lifespan,
        readiness=watcher.not_ready_reason,
        registry=registry,
        span_exporter=span_exporter,
        # Innermost: CORS, tracing and the observability middleware wrap the fast path too.
        middleware=[*_cors(settings), Middleware(InferFastPath)],
    )
    app.state.routes = watcher
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter()
    app.state.breakers = breakers
    app.state.batch_metrics = batch_metrics
    return app
