"""The demo's traffic simulator against a fake gateway on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchard_cli.demo.traffic import TrafficSimulator, TrafficStats

from .fake_http import FakeServer, Request


class FakeGateway:
    """Serves version 3, except every third request goes to version 4, which fails."""

    def __init__(self) -> None:
        self.count = 0
        self.answered: dict[str, float] = {}  # request id → when answered 200
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if request.path == "/v1/feedback":
            return 202, {"accepted": len(request.json())}, {}
        with self._lock:
            self.count += 1
            failing = self.count % 3 == 0
            if not failing:
                self.answered[request.json()["id"]] = request.at
        if failing:
            return 500, {"error": "injected defect"}, {"X-Orchard-Model-Version": "4"}
        body = {"model_name": "credit-risk", "model_version": "3", "outputs": []}
        return 200, body, {"X-Orchard-Model-Version": "3", "X-Orchard-Route-Arm": "champion"}


@pytest.fixture
def gateway() -> Iterator[FakeServer]:
    with FakeServer(FakeGateway()) as fake:
        assert isinstance(fake.handler, FakeGateway)
        yield fake


async def _drive(simulator: TrafficSimulator, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(simulator.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def test_each_applicant_is_one_row_per_feature_with_a_unit_and_its_label_follows(
    gateway: FakeServer,
):
    async with httpx.AsyncClient() as client:
        simulator = TrafficSimulator(gateway.url, client, rate=40, label_delay=0.3)
        await _drive(simulator, 1.0)

    infers = gateway.of("POST", "/v2/models/credit-risk/infer")
    assert len(infers) >= 20
    first = infers[0]
    body = first.json()
    assert body["id"] == first.headers["x-request-id"]
    assert first.headers["x-orchard-unit"].startswith("a")
    tensors = {t["name"]: t for t in body["inputs"]}
    assert tensors["age"]["datatype"] == "INT64"
    assert tensors["income"]["datatype"] == "FP64"
    assert tensors["employment_type"]["datatype"] == "BYTES"
    assert all(t["shape"] == [1] and len(t["data"]) == 1 for t in tensors.values())
    # Labels go only for answered predictions, never before the delay, and all of them.
    assert isinstance(gateway.handler, FakeGateway)
    ok_ids = gateway.handler.answered
    labels = [(item, r.at) for r in gateway.of("POST", "/v1/feedback") for item in r.json()]
    assert {item["request_id"] for item, _ in labels} == set(ok_ids)
    assert all(item["label"] in (0, 1) for item, _ in labels)
    # after the delay (except the flush at stop, which sends what is left at once)
    early = [item for item, at in labels if at - ok_ids[item["request_id"]] < 0.3]
    assert len(early) < len(labels)
    assert simulator.stats.labels_sent == len(labels)


async def test_failures_are_counted_by_the_version_that_served_them(gateway: FakeServer):
    async with httpx.AsyncClient() as client:
        simulator = TrafficSimulator(gateway.url, client, rate=50, label_delay=0)
        await _drive(simulator, 0.6)

    stats = simulator.stats
    assert stats.by_version["4"].failed == stats.by_version["4"].requests > 0
    assert stats.by_version["3"].failed == 0
    assert stats.failed_outside("4") == 0
    assert stats.failed_outside("3") == stats.by_version["4"].failed
    assert stats.sent == stats.ok + stats.failed


async def test_an_unreachable_gateway_counts_as_failures_of_an_unknown_version():
    async with httpx.AsyncClient() as client:
        simulator = TrafficSimulator("http://127.0.0.1:9", client, rate=20)
        await _drive(simulator, 0.3)

    assert simulator.stats.failed > 0
    assert simulator.stats.failed_outside("4") == simulator.stats.failed


def test_set_drift_changes_the_applicants_from_the_next_one_on():
    simulator = TrafficSimulator("http://unused", httpx.AsyncClient())
    before = [simulator.next_row() for _ in range(400)]

    simulator.set_drift(1.0, 1.0)
    after = [simulator.next_row() for _ in range(400)]

    def mean(rows: list[dict[str, Any]], name: str) -> float:
        return sum(float(r[name]) for r in rows) / len(rows)

    assert mean(after, "age") < mean(before, "age") - 3  # 5 years younger on average
    assert mean(after, "debt_ratio") > mean(before, "debt_ratio") + 0.05
    assert mean(after, "label") > mean(before, "label") + 0.1  # about half default


def test_the_rate_is_answers_per_second_over_the_last_window():
    stats = TrafficStats()
    for i in range(30):
        stats.record(100.0 + i * 0.5, 200, "3", False)

    assert stats.rate(now=114.5, window_s=10.0) == pytest.approx(2.0, abs=0.11)
