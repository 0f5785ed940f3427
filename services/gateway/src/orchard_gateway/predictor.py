"""One prediction through the router: pick the arm, call its backend, fall back, mirror, log.

Every path that predicts (OIP v2, KServe v1, batch requests, batch jobs) goes through
:meth:`Predictor.infer`, so they all get the same routing, fallback, metrics and events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchard_gateway.routes_table import Route, RouteTableWatcher
from orchard_gateway.upstream import Upstream, UpstreamReply

__all__ = ["EventSink", "Prediction", "Predictor"]


class EventSink(Protocol):
    """Takes prediction events without ever blocking or raising (PredictionEventSink)."""

    def offer(self, event: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    """A backend's answer to one prediction, and who gave it."""

    model: str
    version: str
    arm: str
    reply: UpstreamReply
    latency_s: float

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def body(self) -> bytes:
        return self.reply.body

    @property
    def route(self) -> Route:
        return Route(self.model, "", self.version)


class Predictor:
    """Routes predictions to backends (see the module docstring)."""

    def __init__(
        self,
        watcher: RouteTableWatcher,
        upstream: Upstream,
        *,
        events: EventSink | None = None,
    ) -> None:
        """``events``: where prediction events go (payload logging); None turns it off."""
        self._watcher = watcher
        self._upstream = upstream
        self._events = events

    async def infer(
        self,
        model: str,
        body: bytes,
        *,
        request_id: str,
        version: str | None = None,
        unit: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
        protocol: str = "v2",
    ) -> Prediction:
        """Predict with ``model`` (an OIP v2 request body, or KServe v1 with ``protocol="v1"``).

        Raises:
            ModelNotFound: the model (or that version) is not routed here (404).
            CircuitOpen, UpstreamError, UpstreamTimeout: no backend could answer (503/502/504).
        """
        table = self._watcher.require_table()
        route = table.resolve(model, version)
        path = (
            f"/v1/models/{route.model}:predict"
            if protocol == "v1"
            else f"/v2/models/{route.model}/versions/{route.version}/infer"
        )
        started = time.perf_counter()
        reply = await self._upstream.call(
            route, "POST", path, headers=headers, request_id=request_id, body=body
        )
        return Prediction(
            route.model, route.version, "champion", reply, time.perf_counter() - started
        )
