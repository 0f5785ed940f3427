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


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


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
        route = routes.pinned(version) if version is not None else routes.assign(unit)
        trace_id = _trace_id()
        started = time.perf_counter()
        fallback_from: Route | None = None
        try:
            try:
                reply = await self._call(route, body, request_id, headers, protocol)
                if reply.status == 503 and self._may_fall_back(routes, route, version):
                    fallback_from = route
                    self._metrics.fell_back(model, route.version, "unavailable")
            except (CircuitOpen, UpstreamError) as exc:
                if isinstance(exc, UpstreamTimeout) or not self._may_fall_back(
                    routes, route, version
                ):
                    raise
                fallback_from = route
                reason = "circuit_open" if isinstance(exc, CircuitOpen) else "unreachable"
                self._metrics.fell_back(model, route.version, reason)
            if fallback_from is not None:
                route = routes.champion
                reply = await self._call(route, body, request_id, headers, protocol)
        except OrchardError as exc:
            elapsed = time.perf_counter() - started
            self._metrics.observe_prediction(
                model, route.version, route.arm, _failure_code(exc), elapsed, trace_id
            )
            self._offer(
                route,
                routes,
                body,
                None,
                status_for(exc),
                elapsed,
                request_id,
                unit,
                trace_id,
                protocol,
                shadow=False,
            )
            self._mirror(routes, body, request_id, headers, unit, protocol)
            raise
        elapsed = time.perf_counter() - started
        self._metrics.observe_prediction(
            model, route.version, route.arm, str(reply.status), elapsed, trace_id
        )
        self._offer(
            route,
            routes,
            body,
            reply.body,
            reply.status,
            elapsed,
            request_id,
            unit,
            trace_id,
            protocol,
            shadow=False,
        )
        self._mirror(routes, body, request_id, headers, unit, protocol)
        return Prediction(route, reply, elapsed, unit, fallback_from)

    def _may_fall_back(self, routes: ModelRoutes, route: Route, version: str | None) -> bool:
        # An explicitly asked-for version is never swapped for another one.
        champion = routes.champion
        return version is None and route is not champion and route.backend != champion.backend

    async def _call(
        self,
        route: Route,
        body: bytes,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
        protocol: str,
    ) -> UpstreamReply:
        return await self._upstream.call(
            route,
            "POST",
            _path(route, protocol),
            headers=headers,
            request_id=request_id,
            body=body,
        )

    def _offer(
        self,
        route: Route,
        routes: ModelRoutes,
        request_body: bytes,
        response_body: bytes | None,
        status: int,
        elapsed_s: float,
        request_id: str,
        unit: str | None,
        trace_id: str | None,
        protocol: str,
        *,
        shadow: bool,
    ) -> None:
        if self._events is None:
            return
        try:
            event = _event(
                route,
                routes,
                request_body,
                response_body,
                status,
                elapsed_s,
                request_id,
                unit,
                trace_id,
                protocol,
                shadow=shadow,
            )
            self._events.offer(event)
        except Exception:  # payload logging must never fail a prediction
            _log.exception("prediction event not built")

    def _mirror(
        self,
        routes: ModelRoutes,
        body: bytes,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
        unit: str | None,
        protocol: str,
    ) -> None:
        for mirror in routes.mirrors:
            if unit_position(f"mirror:{mirror.route.version}", request_id) * 100 >= mirror.percent:
                continue
            if len(self._mirrors) >= self._mirror_max:
                self._metrics.observe_mirror(routes.model, mirror.route.version, "skipped", None)
                continue
            task = asyncio.get_running_loop().create_task(
                self._shadow(mirror.route, routes, body, request_id, headers, unit, protocol)
            )
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)

    async def _shadow(
        self,
        route: Route,
        routes: ModelRoutes,
        body: bytes,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
        unit: str | None,
        protocol: str,
    ) -> None:
        started = time.perf_counter()
        response: bytes | None = None
        try:
            reply = await self._call(route, body, request_id, headers, protocol)
            code, status, response = str(reply.status), reply.status, reply.body
        except OrchardError as exc:
            code, status = _failure_code(exc), status_for(exc)
        except Exception:  # a mirror must never disturb anything; count and move on
            _log.exception("mirror request to %s failed", route.backend)
            code, status = "error", 500
        elapsed = time.perf_counter() - started
        self._metrics.observe_mirror(route.model, route.version, code, elapsed)
        self._offer(
            route,
            routes,
            body,
            response,
            status,
            elapsed,
            request_id,
            unit,
            None,
            protocol,
            shadow=True,
        )

    async def aclose(self) -> None:
        """Cancel mirrored requests still in flight (at shutdown)."""
        tasks = list(self._mirrors)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _v1_event_tensors(body: bytes | None, key: str) -> dict[str, list[Any]]:
    if not body:
        return {}
    try:
        values = orjson.loads(body).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return {key: values} if isinstance(values, list) else {}


def _event(
    route: Route,
    routes: ModelRoutes,
    request_body: bytes,
    response_body: bytes | None,
    status: int,
    elapsed_s: float,
    request_id: str,
    unit: str | None,
    trace_id: str | None,
    protocol: str,
    *,
    shadow: bool,
) -> dict[str, Any]:
    ok_body = response_body if status < 400 else None
    event = event_from_oip(
        request_body if protocol == "v2" else None,
        ok_body if protocol == "v2" else None,
        request_id=request_id,
        model=route.model,
        version=route.version,
        route_arm=route.arm,
        latency_ms=elapsed_s * 1000.0,
        status=status,
        shadow=shadow,
        experiment=routes.experiment,
        unit=unit,
        trace_id=trace_id,
    )
    if protocol == "v1":
        event["inputs"] = _v1_event_tensors(request_body, "instances")
        event["outputs"] = _v1_event_tensors(ok_body, "predictions")
    return event
