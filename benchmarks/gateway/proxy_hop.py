"""A minimal proxy hop: every request forwarded to one backend through one HTTP client.

The upstream-client comparison (``clients.py``) runs one of these per client, each served
the way the gateway is served (uvicorn, uvloop, httptools, no access log), so that the client
is the only thing that differs. Every client gets the same pool: 100 connections, all kept
alive (httpx keeps only 20 alive by default, which would make it reconnect under load).

Usage: ``python proxy_hop.py --client aiohttp --backend http://127.0.0.1:8080 --port 8098``
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CLIENTS: Final = ("aiohttp", "httpx", "httpx-aiohttp")
POOL_SIZE: Final = 100
KEEPALIVE_S: Final = 4.0
TIMEOUT_S: Final = 30.0

# (method, url, body, content type) -> (status, body, content type)
Forward = Callable[[str, str, bytes, str], Awaitable[tuple[int, bytes, str]]]


@contextlib.asynccontextmanager
async def _aiohttp_forward() -> AsyncIterator[Forward]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_S)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def forward(method: str, url: str, body: bytes, ctype: str) -> tuple[int, bytes, str]:
            async with session.request(
                method, url, data=body or None, headers={"Content-Type": ctype}
            ) as answer:
                return answer.status, await answer.read(), answer.content_type

        yield forward


@contextlib.asynccontextmanager
async def _httpx_forward(over_aiohttp: bool) -> AsyncIterator[Forward]:
    import httpx

    limits = httpx.Limits(
        max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE, keepalive_expiry=KEEPALIVE_S
    )
    transport: httpx.AsyncBaseTransport | None = None
    if over_aiohttp:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S, transport=transport) as client:

        async def forward(method: str, url: str, body: bytes, ctype: str) -> tuple[int, bytes, str]:
            answer = await client.request(
                method, url, content=body or None, headers={"Content-Type": ctype}
            )
            return answer.status_code, answer.content, answer.headers.get("content-type", "")

        yield forward


def create_app(client: str, backend: str) -> Starlette:
    """A Starlette app forwarding every GET and POST to ``backend`` through ``client``."""
    backend = backend.rstrip("/")
    forward: Forward | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal forward
        opened = _aiohttp_forward() if client == "aiohttp" else _httpx_forward(client != "httpx")
        async with opened as forward:
            yield

    async def hop(request: Request) -> Response:
        assert forward is not None  # set by the lifespan before the first request
        body = await request.body()
        ctype = request.headers.get("content-type", "application/json")
        status, content, answer_type = await forward(
            request.method, backend + request.url.path, body, ctype
        )
        return Response(content, status_code=status, media_type=answer_type or None)

    return Starlette(
        routes=[Route("/{path:path}", hop, methods=["GET", "POST"])], lifespan=lifespan
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--backend", required=True, help="base URL, like http://127.0.0.1:8080")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.client, args.backend),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
