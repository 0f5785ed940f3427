"""What routes get injected: settings, the route table in force, the upstream, the body,
and the caller's API key (authenticated, rate-limited and checked for the route's role).

Routes take these ``Annotated`` aliases and never reach for globals; tests swap the
underlying functions with ``app.dependency_overrides``. Every dependency is ``async``: FastAPI
runs a plain ``def`` one in a worker thread, and those thread hops were most of the gateway's
added latency at one connection (measured with cProfile under wrk).
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass
from typing import Annotated, Final, cast

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

from orchard_core.errors import ServiceUnavailable, Unauthorized
from orchard_core.logs import add_log_fields
from orchard_core.requests import read_limited_body
from orchard_gateway.auth import (
    ROLE_ADMIN,
    ROLE_PREDICT,
    UNAUTHORIZED_HEADERS,
    ApiKey,
    AuthDisabled,
    KeyStore,
    RateLimiter,
    require,
)
from orchard_gateway.batch import BatchMetrics
from orchard_gateway.evaluation_sinks import FeedbackSink
from orchard_gateway.jobs import JobRunner
from orchard_gateway.predictor import Predictor
from orchard_gateway.route_sources import RouteTableWatcher
from orchard_gateway.routes_table import RouteTable
from orchard_gateway.settings import GatewaySettings
from orchard_gateway.upstream import Upstream

__all__ = [
    "ADMIN",
    "PREDICT",
    "AdminKey",
    "AuthRequired",
    "BatchMetricsDep",
    "BodyDep",
    "CurrentKey",
    "FeedbackDep",
    "JobsDep",
    "KeyIdLogFilter",
    "PredictCall",
    "PredictCallDep",
    "PredictorDep",
    "RoutesDep",
    "SettingsDep",
    "UpstreamDep",
    "WatcherDep",
    "admin_key",
    "current_key_id",
    "get_batch_metrics",
    "get_feedback_sink",
    "get_jobs",
    "get_key_store",
    "get_predictor",
    "get_rate_limiter",
    "get_routes",
    "get_settings",
    "get_upstream",
    "get_watcher",
    "predict_call",
    "predict_key",
    "read_body",
]


async def get_settings(request: Request) -> GatewaySettings:
    """The gateway's settings."""
    return _settings(request)


def _settings(request: Request) -> GatewaySettings:
    return cast(GatewaySettings, request.app.state.settings)


async def get_watcher(request: Request) -> RouteTableWatcher:
    """The holder of the route table in force."""
    return cast(RouteTableWatcher, request.app.state.routes)


async def get_routes(watcher: Annotated[RouteTableWatcher, Depends(get_watcher)]) -> RouteTable:
    """The route table in force for this request (a snapshot: reloads swap, never mutate)."""
    return watcher.require_table()


async def get_predictor(request: Request) -> Predictor:
    """The router every prediction goes through (made in the app's lifespan)."""
    predictor = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(Predictor, predictor)


async def get_upstream(request: Request) -> Upstream:
    """The pooled client that forwards to backends (made in the app's lifespan)."""
    upstream = getattr(request.app.state, "upstream", None)
    if upstream is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(Upstream, upstream)


current_key_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orchard_api_key_id", default=None
)
"""The id (never the secret) of the API key the request in this context came with."""


class AuthRequired(Unauthorized):
    """401 with ``WWW-Authenticate: Bearer realm="orchard"`` (RFC 6750)."""

    @property
    def headers(self) -> dict[str, str]:
        return dict(UNAUTHORIZED_HEADERS)


class KeyIdLogFilter(logging.Filter):
    """Adds ``api_key_id`` (the key's id, never its secret) to log records of a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        key_id = current_key_id.get()
        if key_id is not None and not hasattr(record, "api_key_id"):
            record.api_key_id = key_id
        return True


async def get_key_store(request: Request) -> KeyStore:
    """The API keys this gateway knows (made in the app's lifespan)."""
    return _key_store(request)


def _key_store(request: Request) -> KeyStore:
    store = getattr(request.app.state, "key_store", None)
    if store is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(KeyStore, store)


async def get_rate_limiter(request: Request) -> RateLimiter:
    """The per-key token buckets."""
    return _rate_limiter(request)


def _rate_limiter(request: Request) -> RateLimiter:
    return cast(RateLimiter, request.app.state.rate_limiter)


def _authorize(request: Request, role: str) -> ApiKey:
    if (
        getattr(request.app.state, "key_store", None) is None
        and not _settings(request).auth_enabled
    ):
        return AuthDisabled  # before start-up: the route's own dependencies answer 503
    store = _key_store(request)
    # A context reused across requests (in-process clients) must not name an earlier key.
    current_key_id.set(None)
    try:
        key = store.authenticate(request.headers)
    except Unauthorized as exc:
        raise AuthRequired(exc.message) from None
    current_key_id.set(key.key_id)
    request.state.api_key_id = key.key_id
    add_log_fields(request, api_key_id=key.key_id)  # on the access line, whatever its context
    if not store.is_disabled:
        # Counted before the role check, so a key hammering a route it may not use is
        # throttled too. relay() copies the decision's RateLimit-* headers to the answer.
        request.state.rate_limit = _rate_limiter(request).enforce(key)
    require(key, role)
    return key


# async, so they run in the request's own context (current_key_id reaches the access log).
async def predict_key(request: Request) -> ApiKey:
    """The caller's key, which must have the ``predict`` role (401/429/403 otherwise)."""
    return _authorize(request, ROLE_PREDICT)


async def admin_key(request: Request) -> ApiKey:
    """The caller's key, which must have the ``admin`` role (401/429/403 otherwise)."""
    return _authorize(request, ROLE_ADMIN)


CurrentKey = Annotated[ApiKey, Depends(predict_key)]
AdminKey = Annotated[ApiKey, Depends(admin_key)]
# For a route decorator's ``dependencies=``: checked before the body is read.
PREDICT: Final[list[DependsParam]] = [Depends(predict_key)]
ADMIN: Final[list[DependsParam]] = [Depends(admin_key)]

SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
WatcherDep = Annotated[RouteTableWatcher, Depends(get_watcher)]
RoutesDep = Annotated[RouteTable, Depends(get_routes)]
UpstreamDep = Annotated[Upstream, Depends(get_upstream)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_feedback_sink(request: Request) -> FeedbackSink:
    """Where feedback is queued for evaluation (made in the app's lifespan)."""
    if _settings(request).evaluation_url is None:
        raise ServiceUnavailable("feedback forwarding is off: set ORCHARD_GATEWAY_EVALUATION_URL")
    sink = getattr(request.app.state, "feedback_sink", None)
    if sink is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(FeedbackSink, sink)


FeedbackDep = Annotated[FeedbackSink, Depends(get_feedback_sink)]


async def get_jobs(request: Request) -> JobRunner:
    """The batch jobs (started in the app's lifespan)."""
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(JobRunner, jobs)


async def get_batch_metrics(request: Request) -> BatchMetrics:
    """Batch rows and jobs metrics."""
    return cast(BatchMetrics, request.app.state.batch_metrics)


JobsDep = Annotated[JobRunner, Depends(get_jobs)]
BatchMetricsDep = Annotated[BatchMetrics, Depends(get_batch_metrics)]


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """The request body, read once, refused with 413 as soon as it passes the limit.

    The declared ``Content-Length`` is checked first; a chunked body is counted as it
    arrives, so an oversized one is never held in memory whole.
    """
    return await _read_body(request, settings.max_body_bytes)


async def _read_body(request: Request, limit: int) -> bytes:
    return await read_limited_body(
        request, limit, owner="the gateway", setting="ORCHARD_GATEWAY_MAX_BODY_BYTES"
    )


BodyDep = Annotated[bytes, Depends(read_body)]


@dataclass(frozen=True, slots=True)
class PredictCall:
    """What a prediction route needs: the caller's key, the body and the predictor."""

    key: ApiKey
    body: bytes
    predictor: Predictor


async def predict_call(request: Request) -> PredictCall:
    """The caller's key (``predict`` role: 401/429/403), then the body (413 over the limit),
    then the predictor (503 while starting).

    One dependency instead of three: FastAPI's resolution of each one was about a third of
    the gateway's own time per prediction (measured in-process with cProfile).
    """
    key = _authorize(request, ROLE_PREDICT)
    body = await _read_body(request, _settings(request).max_body_bytes)
    predictor = await get_predictor(request)
    return PredictCall(key, body, predictor)


PredictCallDep = Annotated[PredictCall, Depends(predict_call)]
