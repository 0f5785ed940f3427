"""A stand-in evaluation service on loopback (aiohttp), recording the batches posted to it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from .loopback import serve

WAIT_S = 5.0
EVENTS = "/v1/events"
FEEDBACK = "/v1/feedback"


class FakeEvaluation:
    """Answers ``POST /v1/events`` and ``POST /v1/feedback``, recording each accepted batch;
    can fail (``fail_times`` answers of ``fail_status``) or stall (until ``release``)."""

    def __init__(self) -> None:
        self.received: dict[str, list[list[dict[str, Any]]]] = {EVENTS: [], FEEDBACK: []}
        self.attempts = 0
        self.fail_times = 0
        self.fail_status = 503
        self.stall = False
        self.release = asyncio.Event()
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        """Accepted batches of prediction events."""
        return self.received[EVENTS]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch]

    @property
    def feedback_batches(self) -> list[list[dict[str, Any]]]:
        return self.received[FEEDBACK]

    @property
    def feedback(self) -> list[dict[str, Any]]:
        return [item for batch in self.feedback_batches for item in batch]

    async def start(self) -> FakeEvaluation:
        app = web.Application()
        app.router.add_post(EVENTS, self._handle)
        app.router.add_post(FEEDBACK, self._handle)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        self.changed.set()
        if self.stall:
            await self.release.wait()
        if self.fail_times > 0:
            self.fail_times -= 1
            return web.json_response({"error": "not now"}, status=self.fail_status)
        assert request.content_type == "application/json"
        batch = orjson.loads(body)
        self.received[request.path].append(batch)
        self.changed.set()
        return web.json_response({"accepted": len(batch)})

    async def wait_until(self, predicate: Callable[[], bool], within_s: float = WAIT_S) -> None:
        """Wait until ``predicate`` holds, re-checked whenever a request arrives."""
        async with asyncio.timeout(within_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
