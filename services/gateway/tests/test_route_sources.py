"""Route table sources: the file (reloaded on change) and retraining's GET /v1/routes (ETag)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.route_sources import FileRouteSource, HttpRouteSource, RouteTableWatcher
from orchard_gateway.routes_table import RouteTableError

from .conftest import Gateway, MakeGateway
from .factories import eventually, infer_body, routes_to, write_routes
from .fake_backend import FakeBackend
from .loopback import serve

BACKEND = "http://127.0.0.1:8080"


@pytest.fixture
def registry() -> CollectorRegistry:
    return new_registry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> GatewayMetrics:
    return GatewayMetrics(registry)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_the_watcher_reloads_only_when_the_file_changes(
    tmp_path: Path, metrics: GatewayMetrics, registry: CollectorRegistry
) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a"))
    watcher = RouteTableWatcher(FileRouteSource(path), metrics=metrics)
    assert watcher.not_ready_reason() is not None
    assert await watcher.refresh() is True
    assert watcher.require_table().models == ["a"]
    assert watcher.not_ready_reason() is None
    assert await watcher.refresh() is False

    # Rewritten in place, same size, same inode: only the mtime tells.
    old = watcher.table
    stat = path.stat()
    path.write_text(path.read_text().replace("a:", "b:"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert await watcher.refresh_or_keep() is True
    assert watcher.table is not None
    assert watcher.table.models == ["b"]
    assert old is not None
    assert old.models == ["a"]  # a request holding the old table still sees it whole
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="success") == 2
    assert _sample(registry, "orchard_gateway_routed_models") == 1


async def test_a_bad_file_keeps_the_last_good_table_and_is_counted_once(
    tmp_path: Path,
    metrics: GatewayMetrics,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a", "b"))
    watcher = RouteTableWatcher(FileRouteSource(path), metrics=metrics)
    await watcher.refresh()
    good = watcher.table

    path.write_text("models: {a: {backend: 'nonsense', version: '1'}}\n")
    assert await watcher.refresh_or_keep() is False
    assert await watcher.refresh_or_keep() is False
    assert watcher.table is good
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="error") == 1
    assert "keeping the last good route table" in caplog.text
    assert str(path) in caplog.text

    path.unlink()
    assert await watcher.refresh_or_keep() is False
    assert watcher.table is good
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="error") == 2

    write_routes(path, routes_to(BACKEND, "c"))
    assert await watcher.refresh_or_keep() is True
    assert watcher.table is not None
    assert watcher.table.models == ["c"]
    assert _sample(registry, "orchard_gateway_routed_models") == 1


async def test_the_watch_task_picks_up_a_new_file(tmp_path: Path, metrics: GatewayMetrics) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a"))
    watcher = RouteTableWatcher(FileRouteSource(path), metrics=metrics, poll_s=0.01)
    await watcher.refresh()
    task = asyncio.create_task(watcher.watch())
    try:
        write_routes(path, routes_to(BACKEND, "a", "z"))
        await eventually(lambda: watcher.table is not None and "z" in watcher.table, "reload")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class RoutesServer:
    """A small real HTTP server standing in for retraining's GET /v1/routes."""

    def __init__(self) -> None:
        self.body = orjson.dumps({"models": routes_to(BACKEND, "a")})
        self.status = 200
        self.if_none_match: list[str | None] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def serve(self, models: dict[str, Any]) -> None:
        self.body = orjson.dumps({"models": models})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/routes"

    async def start(self, port: int = 0) -> RoutesServer:
        app = web.Application()
        app.router.add_get("/v1/routes", self._handle)
        self._runner, self.port = await serve(app, port)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.if_none_match.append(request.headers.get("If-None-Match"))
        if self.status != 200:
            return web.Response(status=self.status, text="retraining is unwell")
        etag = f'"{hash(self.body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.body, content_type="application/json", headers={"ETag": etag})


@pytest.fixture
async def routes_server() -> AsyncIterator[RoutesServer]:
    server = await RoutesServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _reloads(registry: CollectorRegistry, outcome: str) -> float:
    return _sample(registry, "orchard_gateway_route_table_reloads_total", outcome=outcome) or 0.0


async def test_the_http_source_sends_its_etag_and_a_304_keeps_the_table(
    routes_server: RoutesServer,
    session: aiohttp.ClientSession,
    metrics: GatewayMetrics,
    registry: CollectorRegistry,
) -> None:
    watcher = RouteTableWatcher(HttpRouteSource(routes_server.url, session), metrics=metrics)
    assert await watcher.refresh() is True
    table = watcher.require_table()
    assert table.models == ["a"]
    assert await watcher.refresh() is False  # 304: nothing to do
    assert watcher.table is table
    first, second = routes_server.if_none_match
    assert first is None
    assert second is not None
    assert _reloads(registry, "success") == 1
    assert _sample(registry, "orchard_gateway_route_table_last_success_timestamp_seconds")

    routes_server.serve(routes_to(BACKEND, "a", "b"))
    assert await watcher.refresh() is True
    assert watcher.require_table().models == ["a", "b"]


async def test_a_failing_invalid_or_unreachable_source_keeps_the_last_good_table(
    routes_server: RoutesServer,
    session: aiohttp.ClientSession,
    metrics: GatewayMetrics,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher = RouteTableWatcher(HttpRouteSource(routes_server.url, session), metrics=metrics)
    await watcher.refresh()
    good = watcher.table

    routes_server.status = 500
    assert await watcher.refresh_or_keep() is False
    assert "HTTP 500: retraining is unwell" in caplog.text

    routes_server.status = 200
    routes_server.serve({"a": {"backend": "not a url", "version": "1"}})
    with pytest.raises(RouteTableError, match="backend 'not a url' is not an http"):
        await watcher.refresh()

    routes_server.body = b'{"models": '
    with pytest.raises(RouteTableError, match="not valid JSON"):
        await watcher.refresh()

    port = routes_server.port
    await routes_server.stop()
    with pytest.raises(RouteTableError, match="is unreachable"):
        await watcher.refresh()
    assert watcher.table is good
    assert _reloads(registry, "error") == 4
    assert "keeping the last good route table" in caplog.text

    # Back, with a new table: it is taken (the invalid one's ETag was never remembered).
    await routes_server.start(port)
    routes_server.serve(routes_to(BACKEND, "c"))
    assert await watcher.refresh() is True
    assert watcher.require_table().models == ["c"]


async def test_a_gateway_polling_retraining_follows_it_and_waits_for_it_at_start_up(
    make_gateway: MakeGateway, refused_url: str
) -> None:
    # Retraining is down when the gateway starts: up, but not ready, and says why.
    async with make_gateway(routes_url=f"{refused_url}/v1/routes") as gateway:
        ready = await gateway.client.get("/readyz")
        assert ready.status_code == 503
        assert "/v1/routes not loaded" in ready.json()["error"]
        reply = await gateway.client.post("/v2/models/a/infer", content=infer_body())
        assert reply.status_code == 503


async def test_a_gateway_picks_up_a_new_table_from_retraining(
    make_gateway: MakeGateway, routes_server: RoutesServer, backend: FakeBackend
) -> None:
    routes_server.serve(routes_to(backend.url, "a"))
    async with make_gateway(routes_url=routes_server.url) as gateway:
        assert (await gateway.client.get("/readyz")).status_code == 200
        assert (
            await gateway.client.post("/v2/models/b/infer", content=infer_body())
        ).status_code == 404
        routes_server.serve(routes_to(backend.url, "a", "b"))

        async def routed(g: Gateway = gateway) -> bool:
            reply = await g.client.post("/v2/models/b/infer", content=infer_body())
            return reply.status_code == 200

        await eventually(routed, "the new table from retraining")
        assert gateway.metric("orchard_gateway_routed_models") == 2
