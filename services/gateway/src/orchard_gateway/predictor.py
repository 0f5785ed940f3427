"""One prediction through the router: pick the version, call it, fall back, mirror, log.

Every path that predicts (OIP v2, KServe v1, batch requests, batch jobs) goes through
:meth:`Predictor.infer`, so they all get the same routing, fallback, metrics and events:

1. **Assignment.** An explicitly requested version is served by that version. Otherwise the
   unit (the model's ``sticky_key`` header, ``X-Orchard-Unit``, or the OIP request parameter
   named by ``sticky_key``) is hashed with the experiment (or model) to a version, so a unit
   keeps its version while the weights stay the same; without a unit, by weight at random.
2. **Fallback.** When the assigned non-champion version's backend is unreachable, its circuit
   is open, or it answers 503, the champion answers instead, and that is counted.
3. **Mirrors.** A copy goes to each mirror for ``percent`` % of requests (chosen by a hash of
   the request id), in the background and bounded; answers are discarded, outcomes counted.
4. **Events.** Every prediction, mirrored ones included, is offered to the event sink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from opentelemetry import trace

from orchard_core.errors import OrchardError, UpstreamError, UpstreamTimeout, status_for
from orchard_gateway.events import event_from_oip
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.resilience import CircuitOpen
from orchard_gateway.route_sources import RouteTableWatcher
from orchard_gateway.routes_table import (
    DEFAULT_STICKY_KEY,
    ModelRoutes,
    Route,
    unit_position,
)
from orchard_gateway.upstream import Upstream, UpstreamReply

__all__ = ["EventSink", "Prediction", "Predictor", "find_unit"]

_log = logging.getLogger("orchard.gateway.predictor")

_MAX_UNIT_CHARS: Final = 256
_DEFAULT_UNIT_HEADER: Final = DEFAULT_STICKY_KEY.lower().encode()


class EventSink(Protocol):
    """Takes prediction events without ever blocking or raising (PredictionEventSink)."""

    def offer(self, event: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    """A backend's answer to one prediction, and which version and arm gave it."""

    route: Route
    reply: UpstreamReply
    latency_s: float
    unit: str | None = None
    fallback_from: Route | None = None

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def body(self) -> bytes:
        return self.reply.body

    @property
    def version(self) -> str:
        return self.route.version

    @property
    def arm(self) -> str:
        return self.route.arm


def find_unit(
    sticky_key: str,
    headers: Iterable[tuple[bytes, bytes]],
    parameters: Mapping[str, Any] | None = None,
) -> str | None:
    """The unit of assignment: the ``sticky_key`` header, ``X-Orchard-Unit``, or the request
    parameter named ``sticky_key``; None when there is none (or it is not a short string)."""
    wanted = sticky_key.lower().encode()
    fallback: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == wanted:
            return _unit(value.decode("latin-1"))
        if lowered == _DEFAULT_UNIT_HEADER and fallback is None:
            fallback = _unit(value.decode("latin-1"))
    if fallback is not None:
        return fallback
    if parameters:
        given = parameters.get(sticky_key)
        if isinstance(given, str | int) and not isinstance(given, bool):
            return _unit(str(given))
    return None


def _unit(value: str) -> str | None:
    value = value.strip()
    return value if 0 < len(value) <= _MAX_UNIT_CHARS else None


def _trace_ids() -> tuple[str | None, str | None]:
    # The caller's request span: the event carries it, so evaluation can link back to it.
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _path(route: Route, protocol: str) -> str:
    if protocol == "v1":
        return f"/v1/models/{route.model}:predict"
    return f"/v2/models/{route.model}/versions/{route.version}/infer"


def _failure_code(exc: OrchardError) -> str:
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamError):
        return "unreachable"
    return str(status_for(exc))


class Predictor:
    """Routes predictions to backends (see the module docstring)."""

    def __init__(
        self,
        watcher: RouteTableWatcher,
        upstream: Upstream,
        metrics: GatewayMetrics,
        *,
        events: EventSink | None = None,
        mirror_max_in_flight: int = 64,
    ) -> None:
        """``events``: where prediction events go (payload logging); None turns it off."""
        self._watcher = watcher
        self._upstream = upstream
        self._metrics = metrics
        self._events = events
        self._mirror_max = mirror_max_in_flight
        self._mirrors: set[asyncio.Task[None]] = set()

    @property
    def mirrors_in_flight(self) -> int:
        return len(self._mirrors)

    async def infer(
        self,
        model: str,
        body: bytes,
        *,
        request_id: str,
        version: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
        parameters: Mapping[str, Any] | None = None,
        protocol: str = "v2",
    ) -> Prediction:
        """Predict with ``model`` (an OIP v2 request body, or KServe v1 with ``protocol="v1"``).

        Raises:
            ModelNotFound: the model (or that version) is not routed here (404).
            CircuitOpen, UpstreamError, UpstreamTimeout: no backend could answer (503/502/504).
        """
        routes = self._watcher.require_table().model(model)
        headers = list(headers)
        unit = find_unit(routes.sticky_key, headers, parameters)
        call = _Call(routes, body, request_id, headers, unit, *_trace_ids(), protocol)
        route = routes.pinned(version) if version is not None else routes.assign(unit)
        started = time.perf_counter()
        fallback_from: Route | None = None
        try:
            try:
                reply = await self._send(call, route)
                if reply.status == 503 and _may_fall_back(routes, route, version):
                    fallback_from = route
                    self._metrics.fell_back(model, route.version, "unavailable")
            except (CircuitOpen, UpstreamError) as exc:
                if isinstance(exc, UpstreamTimeout) or not _may_fall_back(routes, route, version):
                    raise
                fallback_from = route
                reason = "circuit_open" if isinstance(exc, CircuitOpen) else "unreachable"
                self._metrics.fell_back(model, route.version, reason)
            if fallback_from is not None:
                route = routes.champion
                reply = await self._send(call, route)
        except OrchardError as exc:
            self._record(call, route, _failure_code(exc), status_for(exc), None, started)
            raise
        elapsed = self._record(call, route, str(reply.status), reply.status, reply.body, started)
        return Prediction(route, reply, elapsed, unit, fallback_from)

    def _record(
        self,
        call: _Call,
        route: Route,
        code: str,
        status: int,
        response: bytes | None,
        started: float,
    ) -> float:
        """Count the answered prediction, log its event, start its mirrors; its duration."""
        elapsed = time.perf_counter() - started
        self._metrics.observe_prediction(
            call.routes.model, route.version, route.arm, code, elapsed, call.trace_id
        )
        self._offer(call, route, response, status, elapsed, shadow=False)
        self._mirror(call)
        return elapsed

    async def _send(self, call: _Call, route: Route) -> UpstreamReply:
        return await self._upstream.call(
            route,
            "POST",
            _path(route, call.protocol),
            headers=call.headers,
            request_id=call.request_id,
            body=call.body,
        )

    def _offer(
        self,
        call: _Call,
        route: Route,
        response: bytes | None,
        status: int,
        elapsed_s: float,
        *,
        shadow: bool,
    ) -> None:
        if self._events is None:
            return
        try:
            self._events.offer(_event(call, route, response, status, elapsed_s, shadow=shadow))
        except Exception:  # payload logging must never fail a prediction
            _log.exception("prediction event not built")

    def _mirror(self, call: _Call) -> None:
        routes = call.routes
        for mirror in routes.mirrors:
            position = unit_position(f"mirror:{mirror.route.version}", call.request_id)
            if position * 100 >= mirror.percent:
                continue
            if len(self._mirrors) >= self._mirror_max:
                self._metrics.observe_mirror(routes.model, mirror.route.version, "skipped", None)
                continue
            task = asyncio.get_running_loop().create_task(self._shadow(call, mirror.route))
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)

    async def _shadow(self, call: _Call, route: Route) -> None:
        started = time.perf_counter()
        response: bytes | None = None
        try:
            reply = await self._send(call, route)
            code, status, response = str(reply.status), reply.status, reply.body
        except OrchardError as exc:
            code, status = _failure_code(exc), status_for(exc)
        except Exception:  # a mirror must never disturb anything; count and move on
            _log.exception("mirror request to %s failed", route.backend)
            code, status = "error", 500
        elapsed = time.perf_counter() - started
        self._metrics.observe_mirror(route.model, route.version, code, elapsed)
        # The shadow's event carries no trace id: it is not part of the caller's trace.
        shadow_call = dataclasses.replace(call, trace_id=None, span_id=None)
        self._offer(shadow_call, route, response, status, elapsed, shadow=True)

    async def aclose(self) -> None:
        """Cancel mirrored requests still in flight (at shutdown)."""
        tasks = list(self._mirrors)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Call:
    """One caller's prediction request, as the predictor and its mirrors see it."""

    routes: ModelRoutes
    body: bytes
    request_id: str
    headers: list[tuple[bytes, bytes]]
    unit: str | None
    trace_id: str | None
    span_id: str | None
    protocol: str


def _may_fall_back(routes: ModelRoutes, route: Route, version: str | None) -> bool:
    # An explicitly asked-for version is never swapped for another one.
    champion = routes.champion
    return version is None and route is not champion and route.backend != champion.backend


def _v1_event_tensors(body: bytes | None, key: str) -> dict[str, list[Any]]:
    if not body:
        return {}
    try:
        values = orjson.loads(body).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return {key: values} if isinstance(values, list) else {}


def _event(
    call: _Call,
    route: Route,
    response: bytes | None,
    status: int,
    elapsed_s: float,
    *,
    shadow: bool,
) -> dict[str, Any]:
    ok_body = response if status < 400 else None
    v2 = call.protocol == "v2"
    event = event_from_oip(
        call.body if v2 else None,
        ok_body if v2 else None,
        request_id=call.request_id,
        model=route.model,
        version=route.version,
        route_arm=route.arm,
        latency_ms=elapsed_s * 1000.0,
        status=status,
        shadow=shadow,
        experiment=call.routes.experiment,
        unit=call.unit,
        trace_id=call.trace_id,
        span_id=call.span_id,
    )
    if not v2:
        event["inputs"] = _v1_event_tensors(call.body, "instances")
        event["outputs"] = _v1_event_tensors(ok_body, "predictions")
    return event
