"""Handing the caller's request to the upstream: the one step every forwarding route ends in."""

from __future__ import annotations

import uuid

from fastapi import Request
from starlette.responses import Response

from orchard_gateway.auth import RateDecision, RateLimiter
from orchard_gateway.routes_table import Route
from orchard_gateway.upstream import Upstream

__all__ = ["relay"]


async def relay(
    request: Request,
    upstream: Upstream,
    route: Route,
    path: str,
    body: bytes | None = None,
    *,
    readiness: bool = False,
) -> Response:
    """Forward the caller's request (method, headers, ``body``) to ``route``'s backend.

    ``readiness``: a readiness check, whose 503 is an answer, not a backend failure.
    """
    # The core middleware put the request id (the caller's, or a new one) in the scope.
    request_id = request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
    response = await upstream.forward(
        route,
        request.method,
        path,
        headers=request.headers.raw,
        request_id=request_id,
        body=body,
        readiness=readiness,
    )
    # Set by the auth dependency when auth is on: how the caller's rate limit stands.
    decision = getattr(request.state, "rate_limit", None)
    if isinstance(decision, RateDecision):
        response.headers.update(RateLimiter.headers(decision))
    return response
