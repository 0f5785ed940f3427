"""The Predictor on its own: the events it offers and the exemplars it records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_core.errors import UpstreamError
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.predictor import Predictor, find_unit
from orchard_gateway.route_sources import FileRouteSource, RouteTableWatcher
from orchard_gateway.upstream import Upstream

from .conftest import MakeGateway
from .factories import eventually, infer_body, infer_payload, write_routes
from .fake_backend import FakeBackend

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class ListSink:
    """Keeps every offered event."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def offer(self, event: Mapping[str, Any]) -> bool:
        self.events.append(event)
        return True


class Harness:
    def __init__(self, predictor: Predictor, sink: ListSink, registry: CollectorRegistry) -> None:
        self.predictor = predictor
        self.sink = sink
        self.registry = registry


def _table(champion: str, canary: str, mirror: str) -> dict[str, Any]:
    return {
        "credit-risk": {
            "experiment": "exp-1",
            "versions": [
                {"version": "1", "target_url": champion, "weight": 0},
                {"version": "2", "target_url": canary, "weight": 1, "role": "canary"},
            ],
            "mirrors": [{"version": "3", "target_url": mirror, "percent": 100}],
        }
    }


@pytest.fixture
async def harness(tmp_path: Path, backend: FakeBackend, refused_url: str) -> AsyncIterator[Harness]:
    path = write_routes(tmp_path / "routes.yaml", _table(backend.url, backend.url, backend.url))
    registry = new_registry()
    metrics = GatewayMetrics(registry)
    watcher = RouteTableWatcher(FileRouteSource(path), metrics=metrics)
    await watcher.refresh()
    sink = ListSink()
    async with aiohttp.ClientSession() as session:
        upstream = Upstream(session, metrics, timeout_s=5.0)
        predictor = Predictor(watcher, upstream, metrics, events=sink)
        yield Harness(predictor, sink, registry)
        await predictor.aclose()


async def test_every_prediction_and_its_shadow_become_events(harness: Harness) -> None:
    prediction = await harness.predictor.infer(
        "credit-risk",
        infer_body(),
        request_id="r-1",
        headers=[(b"x-orchard-unit", b"alice")],
    )
    assert (prediction.status, prediction.version, prediction.arm) == (200, "2", "canary")
    await eventually(lambda: len(harness.sink.events) == 2, "a primary and a shadow event")
    primary, shadow = sorted(harness.sink.events, key=lambda e: e["shadow"])
    assert primary["request_id"] == shadow["request_id"] == "r-1"
    assert (primary["version"], primary["route_arm"], primary["shadow"]) == ("2", "canary", False)
    assert (shadow["version"], shadow["route_arm"], shadow["shadow"]) == ("3", "shadow", True)
    assert primary["experiment"] == "exp-1"
    assert primary["unit"] == "alice"
    assert primary["status"] == 200
    assert primary["inputs"] == {"features": infer_payload()["inputs"][0]["data"]}
    assert list(primary["outputs"]) == ["score"]  # the backend's answer, as sent
    assert primary["latency_ms"] > 0


async def test_a_failed_prediction_is_an_event_too_so_error_rates_can_be_judged(
    tmp_path: Path, refused_url: str
) -> None:
    path = write_routes(tmp_path / "routes.yaml", {"m": {"backend": refused_url, "version": "1"}})
    registry = new_registry()
    metrics = GatewayMetrics(registry)
    watcher = RouteTableWatcher(FileRouteSource(path), metrics=metrics)
    await watcher.refresh()
    sink = ListSink()
    async with aiohttp.ClientSession() as session:
        predictor = Predictor(
            watcher, Upstream(session, metrics, timeout_s=5.0), metrics, events=sink
        )
        with pytest.raises(UpstreamError):
            await predictor.infer("m", infer_body(), request_id="r-2")
    (event,) = sink.events
    assert (event["status"], event["outputs"]) == (502, {})
    labels = {"model": "m", "version": "1", "arm": "champion", "code": "unreachable"}
    assert registry.get_sample_value("orchard_gateway_predictions_total", labels) == 1


def test_the_unit_comes_from_the_sticky_header_the_default_header_or_a_parameter() -> None:
    headers = [(b"X-User", b"u-1"), (b"X-Orchard-Unit", b"u-2")]
    assert find_unit("X-User", headers) == "u-1"
    assert find_unit("X-Other", headers) == "u-2"
    assert find_unit("user", [], {"user": 42}) == "42"
    assert find_unit("user", [], {"user": True}) is None
    assert find_unit("user", [], {"user": ["a"]}) is None
    assert find_unit("user", [(b"user", b"x" * 300)]) is None
    assert find_unit("user", [(b"user", b"  ")]) is None
    assert find_unit("user", []) is None


async def test_prediction_metrics_carry_the_trace_id_as_an_exemplar(
    make_gateway: MakeGateway,
) -> None:
    exporter = InMemorySpanExporter()
    async with make_gateway(span_exporter=exporter) as gateway:
        reply = await gateway.client.post(
            "/v2/models/credit-risk/infer",
            content=infer_body(),
            headers={"Content-Type": "application/json", "traceparent": TRACEPARENT},
        )
        assert reply.status_code == 200
        scrape = await gateway.client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert scrape.headers["content-type"].startswith("application/openmetrics-text")
        lines = [
            line
            for line in scrape.text.splitlines()
            if line.startswith("orchard_gateway_predictions_total{")
        ]
        assert len(lines) == 1
        exemplar = lines[0].split("# ", 1)[1]
        assert exemplar.startswith(f'{{trace_id="{TRACE_ID}"}} 1.0')
        # The plain Prometheus format stays the default, without exemplars.
        plain = await gateway.client.get("/metrics")
        assert plain.headers["content-type"].startswith("text/plain")
        assert "# {" not in plain.text
        assert orjson.loads(reply.content)["model_name"] == "credit-risk"
