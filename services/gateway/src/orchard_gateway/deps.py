"""What routes get injected: settings, the route table in force, the upstream, the body.

Routes take these ``Annotated`` aliases and never reach for globals; tests swap the
underlying functions with ``app.dependency_overrides``.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from orchard_core.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from orchard_gateway.routes_table import RouteTable, RouteTableWatcher
from orchard_gateway.settings import GatewaySettings
from orchard_gateway.upstream import Upstream

__all__ = [
    "BodyDep",
    "RoutesDep",
    "SettingsDep",
    "UpstreamDep",
    "WatcherDep",
    "get_routes",
    "get_settings",
    "get_upstream",
    "get_watcher",
    "read_body",
]


def get_settings(request: Request) -> GatewaySettings:
    """The gateway's settings."""
    return cast(GatewaySettings, request.app.state.settings)


def get_watcher(request: Request) -> RouteTableWatcher:
    """The holder of the route table in force."""
    return cast(RouteTableWatcher, request.app.state.routes)


def get_routes(watcher: Annotated[RouteTableWatcher, Depends(get_watcher)]) -> RouteTable:
    """The route table in force for this request (a snapshot: reloads swap, never mutate)."""
    table = watcher.table
    if table is None:
        raise ServiceUnavailable(f"the gateway has not loaded its route table {watcher.path} yet")
    return table


def get_upstream(request: Request) -> Upstream:
    """The pooled client that forwards to backends (made in the app's lifespan)."""
    upstream = getattr(request.app.state, "upstream", None)
    if upstream is None:
        raise ServiceUnavailable("the gateway is starting or stopping; retry shortly")
    return cast(Upstream, upstream)


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
WatcherDep = Annotated[RouteTableWatcher, Depends(get_watcher)]
RoutesDep = Annotated[RouteTable, Depends(get_routes)]
UpstreamDep = Annotated[Upstream, Depends(get_upstream)]


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """The request body, read once, refused with 413 as soon as it passes the limit.

    The declared ``Content-Length`` is checked first; a chunked body is counted as it
    arrives, so an oversized one is never held in memory whole.
    """
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput(f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than the gateway's limit of {limit} bytes"
        " (ORCHARD_GATEWAY_MAX_BODY_BYTES)"
    )


BodyDep = Annotated[bytes, Depends(read_body)]
