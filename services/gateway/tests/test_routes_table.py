"""Route table parsing, validation, lookups and reloading."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from orchard_core import ModelNotFound, new_registry
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.routes_table import (
    Route,
    RouteTable,
    RouteTableError,
    RouteTableWatcher,
    load_route_table,
    parse_route_table,
)

from .factories import eventually, routes_to, write_routes

BACKEND = "http://127.0.0.1:8080"


def test_a_table_as_orchard_up_writes_it() -> None:
    table = parse_route_table(
        """
models:
  credit-risk: {backend: "http://127.0.0.1:8080", version: "1"}
  digits: {backend: "https://runtime.ml.svc:8443/", version: 12}
"""
    )
    assert table.models == ["credit-risk", "digits"]
    assert table["credit-risk"] == Route("credit-risk", BACKEND, "1")
    # Numbers become strings; a trailing slash is dropped so paths join cleanly.
    assert table["digits"] == Route("digits", "https://runtime.ml.svc:8443", "12")


def test_json_is_accepted(tmp_path: Path) -> None:
    path = write_routes(tmp_path / "routes.json", routes_to(BACKEND, "digits"))
    assert load_route_table(path).resolve("digits").backend == BACKEND


def test_a_backend_may_have_a_path_prefix_and_unknown_keys_are_ignored() -> None:
    table = parse_route_table(
        'models: {m: {backend: "http://gw.local/runtime", version: "a1", weight: 100}}'
    )
    assert table["m"].backend == "http://gw.local/runtime"


def test_an_empty_models_section_routes_nothing() -> None:
    assert len(parse_route_table("models:\n")) == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'models' key"),
        ("routes: {}\n", "expected a mapping with a 'models' key"),
        ("models: [a, b]\n", "'models' must map each model name"),
        ("models: {m: http://x}\n", "model 'm': expected a mapping"),
        ("models: {m: {version: '1'}}\n", "model 'm': 'backend' is required"),
        ("models: {m: {backend: 'http://x'}}\n", "model 'm': 'version' is required"),
        ("models: {m: {backend: 'ftp://x', version: '1'}}\n", "is not an http(s) URL"),
        ("models: {m: {backend: 'localhost:8080', version: '1'}}\n", "is not an http(s) URL"),
        ("models: {m: {backend: 'http://x:port', version: '1'}}\n", "invalid port"),
        ("models: {m: {backend: 'http://x?a=1', version: '1'}}\n", "must not have a query"),
        ("models: {m: {backend: 7, version: '1'}}\n", "'backend' must be an http(s) URL"),
        ("models: {m: {backend: 'http://x', version: ''}}\n", "'version' must be a non-empty"),
        ("models: {m: {backend: 'http://x', version: true}}\n", "'version' must be a non-empty"),
        ("models: {m: {backend: 'http://x', version: 'a/b'}}\n", "version 'a/b' may only use"),
        ("models: {'a/b': {backend: 'http://x', version: '1'}}\n", "model name 'a/b' is invalid"),
        ("models: {'my model': {backend: 'http://x', version: '1'}}\n", "is invalid"),
        ("models: {1: {backend: 'http://x', version: '1'}}\n", "model name 1 is invalid"),
    ],
)
def test_invalid_tables_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text)
    assert problem in str(caught.value)


def test_invalid_json_is_refused() -> None:
    with pytest.raises(RouteTableError, match="not valid JSON"):
        parse_route_table(b'{"models": ', json=True)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RouteTableError, match=f"route table {missing}: file not found"):
        load_route_table(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: {m: {backend: 'http://x'}}\n")
    with pytest.raises(RouteTableError, match=f"route table {broken}: model 'm'"):
        load_route_table(broken)


def test_resolve_explains_what_is_routed() -> None:
    table = RouteTable({"a": Route("a", BACKEND, "1"), "b": Route("b", BACKEND, "2")})
    assert table.resolve("b", "2").version == "2"
    with pytest.raises(
        ModelNotFound,
        match=r"^model 'x' is not routed by this gateway"
        r" \(routed models: a, b\)$",
    ):
        table.resolve("x")
    with pytest.raises(ModelNotFound, match="model 'a' has no version '2' here"):
        table.resolve("a", "2")
    with pytest.raises(ModelNotFound, match=r"\(no models are routed\)"):
        RouteTable().resolve("x")
    many = RouteTable({f"m{i}": Route(f"m{i}", BACKEND, "1") for i in range(30)})
    with pytest.raises(ModelNotFound, match=r"\(30 models are routed; GET /v2/models"):
        many.resolve("x")


def test_a_table_cannot_be_changed_once_made() -> None:
    source = {"a": Route("a", BACKEND, "1")}
    table = RouteTable(source)
    source["b"] = Route("b", BACKEND, "1")
    assert list(table) == ["a"]
    with pytest.raises(TypeError):
        table["b"] = Route("b", BACKEND, "1")  # type: ignore[index]


@pytest.fixture
def registry() -> CollectorRegistry:
    return new_registry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> GatewayMetrics:
    return GatewayMetrics(registry)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_watcher_reloads_only_when_the_file_changes(
    tmp_path: Path, metrics: GatewayMetrics, registry: CollectorRegistry
) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a"))
    watcher = RouteTableWatcher(path, metrics=metrics)
    assert watcher.not_ready_reason() is not None
    assert watcher.load().models == ["a"]
    assert watcher.not_ready_reason() is None
    assert watcher.reload_if_changed() is False

    # Rewritten in place, same size, same inode: only the mtime tells.
    old = watcher.table
    stat = path.stat()
    path.write_text(path.read_text().replace("a:", "b:"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert watcher.reload_if_changed() is True
    assert watcher.table is not None
    assert watcher.table.models == ["b"]
    assert old is not None
    assert old.models == ["a"]  # a request holding the old table still sees it whole
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="success") == 2
    assert _sample(registry, "orchard_gateway_routed_models") == 1


def test_a_bad_file_keeps_the_last_good_table_and_is_counted_once(
    tmp_path: Path,
    metrics: GatewayMetrics,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a", "b"))
    watcher = RouteTableWatcher(path, metrics=metrics)
    good = watcher.load()

    path.write_text("models: {a: {backend: 'nonsense', version: '1'}}\n")
    assert watcher.reload_if_changed() is False
    assert watcher.reload_if_changed() is False
    assert watcher.table is good
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="error") == 1
    assert "keeping the last good route table" in caplog.text
    assert str(path) in caplog.text

    path.unlink()
    assert watcher.reload_if_changed() is False
    assert watcher.table is good
    assert _sample(registry, "orchard_gateway_route_table_reloads_total", outcome="error") == 2

    write_routes(path, routes_to(BACKEND, "c"))
    assert watcher.reload_if_changed() is True
    assert watcher.table is not None
    assert watcher.table.models == ["c"]
    assert _sample(registry, "orchard_gateway_routed_models") == 1


async def test_the_watch_task_picks_up_a_new_file(tmp_path: Path, metrics: GatewayMetrics) -> None:
    path = write_routes(tmp_path / "routes.yaml", routes_to(BACKEND, "a"))
    watcher = RouteTableWatcher(path, metrics=metrics, poll_s=0.01)
    watcher.load()
    task = asyncio.create_task(watcher.watch())
    try:
        write_routes(path, routes_to(BACKEND, "a", "z"))
        await eventually(lambda: watcher.table is not None and "z" in watcher.table, "reload")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
