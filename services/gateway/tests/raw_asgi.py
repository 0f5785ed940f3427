"""An ASGI client that sends exactly the bytes given, as uvicorn would hand them over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import anyio
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from starlette.types import Message


@dataclass(frozen=True)
class Reply:
    """One answer as the ASGI server would put it on the wire."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


class RawClient:
    """Calls the app over ASGI with exactly the bytes given, as uvicorn would hand them over.

    Starlette's RawClient cannot: it re-encodes request header values and decodes response
    headers as UTF-8, so it reports its own errors as the app's 500s.
    """

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self._app = app
        self._portal = portal

    def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Reply:
        """``target``: a percent-encoded path, with an optional ``?query``."""
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": [(b"host", b"gateway"), *((k.lower(), v) for k, v in headers or [])],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        reply: Reply = self._portal.call(self._call, scope, body)
        return reply

    async def _call(self, scope: dict[str, Any], body: bytes) -> Reply:
        sent: list[Message] = []
        delivered = False
        answered = anyio.Event()

        async def receive() -> Message:
            nonlocal delivered
            if delivered:  # the caller stays connected until the answer is complete
                await answered.wait()
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        try:
            await self._app(scope, receive, send)
        except Exception:  # Starlette re-raises after its 500 went out, as under uvicorn
            if not sent:  # uvicorn answers 500 itself then
                return Reply(500, [], b"")
        start = next(m for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Reply(start["status"], list(start.get("headers", [])), content)
