"""A stand-in model backend on loopback (aiohttp), recording what the gateway sends it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from .loopback import serve

_VERSIONED = re.compile(r"^/v2/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")


@dataclass
class Seen:
    """One request as the backend received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes
    peer_port: int


@dataclass
class Canned:
    """A fixed answer for one path."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class FakeBackend:
    """Answers OIP v2 / KServe v1 like the runtime would, or with canned replies."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.canned: dict[str, Canned] = {}
        self.stall = False  # when set, requests wait for `release` before answering
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        # /infer calls, counted in arrival order (from 0): the k-th gets fail_infer[k] if set,
        # and from stall_from on they wait for `release` like with `stall`.
        self.infer_calls = 0
        self.fail_infer: dict[int, Canned] = {}
        self.stall_from: int | None = None
        self.echo = False  # /infer answers also carry output "echo" = the first input
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def peer_ports(self) -> set[int]:
        return {s.peer_port for s in self.seen}

    async def start(self) -> FakeBackend:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(
            Seen(request.method, request.raw_path, request.headers, body, peer[1] if peer else 0)
        )
        self.arrived.set()
        call: int | None = None
        if request.path.endswith("/infer"):
            call = self.infer_calls
            self.infer_calls += 1
        if self.stall or (
            call is not None and self.stall_from is not None and call >= self.stall_from
        ):
            await self.release.wait()
        canned = self.fail_infer.get(call) if call is not None else None
        canned = canned or self.canned.get(request.raw_path)
        if canned is not None:
            headers = {"Content-Type": canned.content_type, **canned.headers}
            return web.Response(status=canned.status, body=canned.body, headers=headers)
        return self._default(request, body)

    def _default(self, request: web.Request, body: bytes) -> web.Response:
        match = _VERSIONED.match(request.path)
        if match is None:
            if request.path.endswith(":predict"):
                n = len(orjson.loads(body)["instances"])
                return _json({"predictions": [0] * n})
            return _json({"path": request.path, "method": request.method})
        model, version, rest = match["model"], match["version"], match["rest"] or ""
        headers = {"X-Orchard-Model-Version": version}
        if rest == "/infer":
            payload = orjson.loads(body)
            first = payload["inputs"][0]
            n = first["shape"][0] if first.get("shape") else 1  # one score per row
            outputs = [{"name": "score", "shape": [n], "datatype": "FP32", "data": [0.5] * n}]
            if self.echo:
                outputs.append({**first, "name": "echo"})
            answer = {
                "model_name": model,
                "model_version": version,
                "id": payload.get("id"),
                "outputs": outputs,
            }
            return _json(answer, headers)
        if rest == "/ready":
            return _json({"name": model, "ready": True}, headers)
        return _json({"name": model, "versions": [version], "platform": "fake"}, headers)


def _json(payload: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), content_type="application/json", headers=headers
    )
