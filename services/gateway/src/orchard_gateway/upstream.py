"""Forwarding requests to model backends over one pooled keep-alive HTTP client.

The gateway is a transparent proxy here: the caller's bytes go upstream unchanged, and the
backend's status, body and headers (content type included) come back unchanged, except for
hop-by-hop headers, which belong to each connection, and the headers the gateway owns
(``X-Request-Id``, ``X-Orchard-Model-Version``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import aiohttp
import orjson
from opentelemetry import propagate, trace
from starlette.responses import Response

from orchard_core.errors import UpstreamError, UpstreamTimeout
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.resilience import (
    CircuitBreakers,
    CircuitOpen,
    RetryBudget,
    RetryPolicy,
    Verdict,
    call_with_retries,
    default_classify,
)
from orchard_gateway.routes_table import Route
from orchard_gateway.settings import GatewaySettings

__all__ = [
    "MODEL_VERSION_HEADER",
    "Upstream",
    "UpstreamReply",
    "new_session",
    "relay_response",
    "request_headers",
]

MODEL_VERSION_HEADER: Final = "x-orchard-model-version"

# RFC 9110 §7.6.1 hop-by-hop headers, and the legacy Proxy-Connection.
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Host and length are the client library's to compute; the request id is the gateway's.
_NOT_FORWARDED: Final = _HOP_BY_HOP | {b"host", b"content-length", b"expect", b"x-request-id"}
# The gateway's server sets its own date/server; the model version is the routed one.
_NOT_RETURNED: Final = _HOP_BY_HOP | {
    b"content-length",
    b"date",
    b"server",
    b"x-request-id",
    MODEL_VERSION_HEADER.encode(),
}
# The caller's credentials are the gateway's to check; with auth on they stop here.
_CREDENTIALS: Final = frozenset({b"authorization", b"x-api-key"})
_CUT_OFF_SLACK_S: Final = 0.005
_TRACE_HEADERS: Final = frozenset({"traceparent", "tracestate"})


def new_session(settings: GatewaySettings) -> aiohttp.ClientSession:
    """The one pooled keep-alive client every upstream call goes through.

    Bodies are passed through undecoded (``auto_decompress=False``), and no
    ``Accept-Encoding`` is added that the caller did not send, so what the caller gets is
    exactly what the backend sent; likewise no ``Content-Type`` is made up for a body.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_pool_size,
        limit_per_host=0,
        keepalive_timeout=settings.upstream_keepalive_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "Content-Type"),
        raise_for_status=False,
    )


def _connection_tokens(raw: Iterable[tuple[bytes, bytes]], name: bytes) -> frozenset[bytes]:
    # Headers listed in `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
    tokens: set[bytes] = set()
    for key, value in raw:
        if key.lower() == name:
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def request_headers(
    raw: Iterable[tuple[bytes, bytes]], request_id: str, *, tracing: bool = False
) -> dict[str, str]:
    """The headers sent upstream: the caller's end-to-end headers and the request id.

    With ``tracing``, trace context is injected from the current span; otherwise the
    caller's ``traceparent``/``tracestate`` travel unchanged.
    """
    raw = list(raw)
    dropped = _NOT_FORWARDED | _connection_tokens(raw, b"connection")
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.lower()
        if name in dropped:
            continue
        text = name.decode("latin-1")
        given = value.decode("latin-1")
        # Repeated request headers fold into one, comma-separated (RFC 9110 §5.3).
        headers[text] = f"{headers[text]}, {given}" if text in headers else given
    headers["x-request-id"] = request_id
    if not tracing:
        return headers
    injected: dict[str, str] = {}
    propagate.inject(injected)
    if "traceparent" in injected:
        for trace_header in _TRACE_HEADERS:
            headers.pop(trace_header, None)
        headers.update(injected)
    return headers


def _response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    raw = list(raw)
    dropped = _NOT_RETURNED | _connection_tokens(raw, b"connection")
    return [(key.lower(), value) for key, value in raw if key.lower() not in dropped]


def _served_version(
    route: Route, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> str | None:
    if route.version:
        return route.version
    # An unpinned route: report what the backend says it served.
    raw = list(headers)
    for key, value in raw:
        if key.lower() == MODEL_VERSION_HEADER.encode():
            return value.decode("latin-1")
    if any(key.lower() == b"content-encoding" for key, _ in raw):
        return None
    try:
        version = orjson.loads(body).get("model_version")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return None if version is None else str(version)


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """One backend answer, read whole (``status`` is what the retry classifier looks at)."""

    status: int
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(slots=True)
class _Outcome:
    """How the latest try ended, as the upstream metrics' ``code`` label says it."""

    code: str = "cancelled"


class Upstream:
    """Sends one caller's request to a model's backend and relays the answer.

    Each request goes through the backend's circuit breaker and may be retried (connect
    failures and 503 only) within ``policy`` and the shared retry ``budget``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        metrics: GatewayMetrics,
        *,
        timeout_s: float,
        tracer: trace.Tracer | None = None,
        policy: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        breakers: CircuitBreakers | None = None,
        strip_credentials: bool = False,
    ) -> None:
        """``strip_credentials``: do not forward ``Authorization``/``X-API-Key`` (auth on)."""
        self._session = session
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._tracer = tracer
        self._policy = (
            policy
            if policy is not None
            else RetryPolicy(
                max_attempts=1, per_try_timeout_s=timeout_s, total_deadline_s=timeout_s
            )
        )
        self._budget = budget if budget is not None else RetryBudget()
        self._breakers = breakers if breakers is not None else CircuitBreakers()
        self._strip_credentials = strip_credentials

    async def forward(
        self,
        route: Route,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[bytes, bytes]],
        request_id: str,
        body: bytes | None = None,
        readiness: bool = False,
    ) -> Response:
        """Forward to ``route.backend + path`` and return the backend's answer as is.

        Raises what :meth:`call` raises.
        """
        reply = await self.call(
            route,
            method,
            path,
            headers=headers,
            request_id=request_id,
            body=body,
            readiness=readiness,
        )
        return relay_response(route, reply)

    async def call(
        self,
        route: Route,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[bytes, bytes]],
        request_id: str,
        body: bytes | None = None,
        readiness: bool = False,
    ) -> UpstreamReply:
        """Send to ``route.backend + path`` and return the backend's whole answer.

        With ``readiness`` (a readiness check), any HTTP answer, a 503 "not ready" included,
        is the answer: not retried and not held against the backend's circuit breaker.

        Raises:
            CircuitOpen: the backend's circuit is open; refused without calling it (503).
            UpstreamTimeout: the backend did not answer within the timeout (504).
            UpstreamError: the backend could not be reached or broke off (502).
        """
        url = route.backend + path
        breaker = self._breakers.get(route.backend)
        with self._span(method, url, route) as span:
            if self._strip_credentials:
                headers = [(k, v) for k, v in headers if k.lower() not in _CREDENTIALS]
            sent = request_headers(headers, request_id, tracing=span is not None)
            outcome = _Outcome()
            tries = 0

            async def attempt(timeout_s: float) -> UpstreamReply:
                nonlocal tries
                tries += 1
                outcome.code = "cancelled"
                return await self._try(route, method, url, sent, body, timeout_s, outcome)

            started = time.perf_counter()
            try:
                reply = await call_with_retries(
                    attempt,
                    self._policy,
                    self._budget,
                    breaker,
                    classify=_classify_readiness if readiness else default_classify,
                )
            except CircuitOpen:
                outcome.code = "circuit_open"
                raise
            except TimeoutError:  # a try cut off by call_with_retries' own per-try timer
                raise UpstreamTimeout(
                    f"backend for model '{route.model}' at {route.backend} did not answer"
                    f" within {self._try_limit_s():g}s"
                ) from None
            finally:
                # One observation per caller request (its last try's outcome, all tries'
                # time); the extra tries are counted apart.
                elapsed = time.perf_counter() - started
                self._metrics.observe_upstream(route.model, route.version, outcome.code, elapsed)
                self._metrics.retried(route.model, tries - 1)
            if span is not None:
                span.set_attribute("http.response.status_code", reply.status)
                if tries > 1:
                    span.set_attribute("orchard.upstream.tries", tries)
                if reply.status >= 400:
                    span.set_status(trace.StatusCode.ERROR)
        return reply

    async def _try(
        self,
        route: Route,
        method: str,
        url: str,
        sent: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        outcome: _Outcome,
    ) -> UpstreamReply:
        # outcome.code is left "cancelled" only when the caller's task is cancelled mid-call.
        loop = asyncio.get_running_loop()
        cut_off_at = loop.time() + timeout_s
        try:
            # Redirects go back to the caller, as any answer does: a proxy never follows.
            async with self._session.request(
                method,
                url,
                data=body or None,
                headers=sent,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as reply:
                payload = await reply.read()
                outcome.code = str(reply.status)
                return UpstreamReply(reply.status, tuple(reply.raw_headers), payload)
        except TimeoutError:
            outcome.code = "timeout"
            raise UpstreamTimeout(
                f"backend for model '{route.model}' at {route.backend} did not answer"
                f" within {self._try_limit_s():g}s"
            ) from None
        except asyncio.CancelledError:
            # call_with_retries cuts a try off at the same time as aiohttp would (its timer
            # may fire first): that is a timeout, not the caller going away.
            if loop.time() >= cut_off_at - _CUT_OFF_SLACK_S:
                outcome.code = "timeout"
            raise
        except aiohttp.ClientConnectionError as exc:
            outcome.code = "unreachable"
            raise UpstreamError(
                f"backend for model '{route.model}' at {route.backend} is unreachable:"
                f" {_reason(exc)}"
            ) from exc
        except aiohttp.ClientError as exc:
            outcome.code = "error"
            raise UpstreamError(
                f"backend for model '{route.model}' at {route.backend} failed: {_reason(exc)}"
            ) from exc

    def _try_limit_s(self) -> float:
        # The configured limit of one try (not the few microseconds less it may really get).
        return min(self._policy.per_try_timeout_s, self._policy.total_deadline_s)

    @contextmanager
    def _span(self, method: str, url: str, route: Route) -> Iterator[trace.Span | None]:
        # No aiohttp client instrumentation is installed, so the client span is made here;
        # request_headers() then injects this span's context as the upstream's parent.
        if self._tracer is None:
            yield None
            return
        attributes = {
            "http.request.method": method,
            "url.full": url,
            "orchard.model": route.model,
            "orchard.model_version": route.version,
        }
        with self._tracer.start_as_current_span(
            method, kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield span


def _classify_readiness(outcome: object) -> Verdict:
    # A model that is loading answers its readiness check 503: a fine answer, not a failure.
    if isinstance(outcome, BaseException):
        return default_classify(outcome)
    return Verdict.OK


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def relay_response(route: Route, reply: UpstreamReply) -> Response:
    """The caller's answer from a backend's: same status and body, the gateway's headers."""
    raw = list(reply.raw_headers)
    body = reply.body
    response = Response(content=body, status_code=reply.status)
    response.raw_headers.extend(_response_headers(raw))
    version = _served_version(route, raw, body)
    if version is not None:
        response.raw_headers.append((MODEL_VERSION_HEADER.encode(), version.encode("latin-1")))
    return response
