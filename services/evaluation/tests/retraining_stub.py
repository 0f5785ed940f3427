"""A stand-in retraining service on loopback: records the triggers posted to it."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class RetrainingStub:
    """``POST /v1/triggers`` answered with ``status`` (202 by default) and recorded."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 202
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _triggers(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"ok": self.status < 300}, status=self.status)

    async def start(self) -> RetrainingStub:
        app = web.Application()
        app.router.add_post("/v1/triggers", self._triggers)
        # A connection the evaluation service keeps alive must not hold the stop up for 60 s.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
