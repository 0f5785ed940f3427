"""Serving a stand-in aiohttp app on a free loopback port, for the tests' fake services."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Start ``app`` on 127.0.0.1 (a free port unless ``port``); its runner and port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, int(runner.addresses[0][1])
