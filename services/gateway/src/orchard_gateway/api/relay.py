"""Handing the caller's request to the upstream: the one step every forwarding route ends in."""

from __future__ import annotations

import uuid

from fastapi import Request
from starlette.responses import Response

from orchard_gateway.routes_table import Route
from orchard_gateway.upstream import Upstream

__all__ = ["relay"]


async def relay(
    request: Request, upstream: Upstream, route: Route, path: str, body: bytes | None = None
) -> Response:
    """Forward the caller's request (method, headers, ``body``) to ``route``'s backend."""
    # The core middleware put the request id (the caller's, or a new one) in the scope.
    request_id = request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
    return await upstream.forward(
        route,
        request.method,
        path,
        headers=request.headers.raw,
        request_id=request_id,
        body=body,
    )
