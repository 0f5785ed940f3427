"""One pure-ASGI middleware for request ids, RED metrics and access logs.

The access line (logger ``orchard.access``) carries ``method``, ``path``, ``status``,
``route`` and ``duration_ms``, plus whatever the app added during the request with
``orchard_core.logs.add_log_fields`` (model, version, API key id...). The request id comes
from the log formatter. Headers are never logged, so credentials cannot leak through it.

Pure ASGI (not ``BaseHTTPMiddleware``) because it sits on every request's hot path.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchard_core.logs import log_fields, request_id_var
from orchard_core.metrics import HttpMetrics

__all__ = ["REQUEST_ID_HEADER", "ObservabilityMiddleware"]

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
_MAX_REQUEST_ID = 128
_access_log = logging.getLogger("orchard.access")


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _REQUEST_ID_BYTES:
            text: str = value.decode("latin-1").strip()
            # Accept a caller's id only if it is short and printable, so logs stay sane.
            if 0 < len(text) <= _MAX_REQUEST_ID and text.isprintable():
                return text
            return None
    return None


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    """Propagates or creates ``X-Request-Id``, records RED metrics, logs access lines."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()
        header = (_REQUEST_ID_BYTES, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != _REQUEST_ID_BYTES]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            method = scope.get("method", "GET")
            route = _route_template(scope)
            self.metrics.observe(method, route, status, elapsed)
            if self.access_log:
                path = scope.get("path", "")
                # The app's fields (model, version, key id...) first: ours are the truth.
                extra = log_fields(scope)
                extra.update(
                    method=method,
                    path=path,
                    status=status,
                    route=route,
                    duration_ms=round(elapsed * 1000, 3),
                )
                _access_log.info(
                    "%s %s %d %.1fms", method, path, status, elapsed * 1000, extra=extra
                )
            request_id_var.reset(token)
