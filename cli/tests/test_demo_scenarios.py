"""How the demo's scenarios judge their outcome, with a fake platform, traffic and clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from rich.console import Console

from orchard_cli.demo.scenarios import bad_candidate_scenario, champion_of, drift_scenario
from orchard_cli.demo.traffic import TrafficStats
from orchard_cli.demo.view import LiveView, PlainView, Snapshot, weights_text


def _routes(champion: str, canary: str | None = None) -> dict[str, Any]:
    versions = [{"version": champion, "weight": 100.0, "role": "champion"}]
    if canary:
        versions = [
            {"version": champion, "weight": 80.0, "role": "champion"},
            {"version": canary, "weight": 20.0, "role": "canary"},
        ]
    return {"models": {"credit-risk": {"versions": versions, "mirrors": []}}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_tick: list[Callable[[float], None]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        for tick in self.on_tick:
            tick(self.now)


class FakePlatform:
    def __init__(self, champion: str = "3") -> None:
        self.champion = champion
        self.rollout_list: list[dict[str, Any]] = [{"id": 1, "status": "promoted"}]
        self.run_list: list[dict[str, Any]] = [{"id": 1, "status": "succeeded"}]
        self.started: list[tuple[str, Mapping[str, Any]]] = []

    async def rollouts(self, model: str) -> list[dict[str, Any]]:
        return list(self.rollout_list)

    async def rollout(self, rollout_id: Any) -> dict[str, Any]:
        return next(r for r in self.rollout_list if r["id"] == rollout_id)

    async def pipeline_runs(self, model: str) -> list[dict[str, Any]]:
        return list(self.run_list)

    async def pipeline_run(self, run_id: Any) -> dict[str, Any]:
        return next(r for r in self.run_list if r["id"] == run_id)

    async def routes(self) -> dict[str, Any]:
        return _routes(self.champion)

    async def start_pipeline_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.started.append(("run", body))
        run = {"id": 2, "status": "pending"}
        self.run_list.insert(0, run)
        return run

    async def start_rollout(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.started.append(("rollout", body))
        rollout = {"id": 2, "status": "canary", "candidate_version": body["candidate_version"]}
        self.rollout_list.insert(0, rollout)
        return rollout


class FakeTraffic:
    def __init__(self) -> None:
        self.stats = TrafficStats()
        self.drift: list[tuple[float, float, float]] = []
        self.clock: FakeClock | None = None

    def set_drift(self, shift: float, concept: float) -> None:
        self.drift.append((self.clock() if self.clock else 0.0, shift, concept))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def traffic(clock: FakeClock) -> FakeTraffic:
    fake = FakeTraffic()
    fake.clock = clock
    return fake


def _at(clock: FakeClock, when: float, change: Callable[[], None]) -> None:
    done = [False]

    def tick(now: float) -> None:
        if now >= when and not done[0]:
            done[0] = True
            change()

    clock.on_tick.append(tick)


async def test_drift_succeeds_when_a_retrained_candidate_is_promoted(
    clock: FakeClock, traffic: FakeTraffic
):
    platform = FakePlatform()
    notes: list[str] = []
    _at(clock, 100, lambda: platform.run_list.insert(0, {"id": 5, "status": "running"}))
    _at(clock, 200, lambda: platform.rollout_list.insert(0, {"id": 9, "status": "canary"}))
    _at(
        clock,
        300,
        lambda: platform.rollout_list[0].update(status="promoted", candidate_version="4"),
    )

    result = await drift_scenario(
        platform, traffic, notes.append, warmup_s=60, clock=clock, sleep=clock.sleep
    )

    assert result.ok, result.reason
    assert "version 4 replaced 3 (rollout 9)" in result.reason
    assert traffic.drift == [(60.0, 1.0, 1.0)]  # drift only after the warm-up
    assert 300 <= clock.now < 310


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda p: p.rollout_list.insert(
                0, {"id": 9, "status": "rolled_back", "candidate_version": "4"}
            ),
            "rollout 9 of version 4 rolled_back",
        ),
        (
            lambda p: p.run_list.insert(0, {"id": 5, "status": "failed", "error": "OOM"}),
            "pipeline run 5 failed: OOM",
        ),
        (
            lambda p: p.run_list.insert(
                0, {"id": 5, "status": "succeeded", "gate_verdict": "failed"}
            ),
            "failed the quality gate",
        ),
    ],
)
async def test_drift_fails_on_a_rollback_or_a_failed_run(
    clock: FakeClock, traffic: FakeTraffic, change: Any, reason: str
):
    platform = FakePlatform()
    _at(clock, 120, lambda: change(platform))

    result = await drift_scenario(
        platform, traffic, lambda _: None, warmup_s=60, clock=clock, sleep=clock.sleep
    )

    assert not result.ok
    assert reason in result.reason


async def test_drift_fails_after_the_timeout_and_ignores_older_rollouts(
    clock: FakeClock, traffic: FakeTraffic
):
    platform = FakePlatform()  # rollout 1 was promoted before the demo started

    result = await drift_scenario(
        platform, traffic, lambda _: None, warmup_s=1, timeout_s=50, clock=clock, sleep=clock.sleep
    )

    assert not result.ok
    assert result.reason == "no promoted retrained version after 50 s"


def _bad_candidate_platform(clock: FakeClock, traffic: FakeTraffic, end: str) -> FakePlatform:
    platform = FakePlatform()
    _at(
        clock,
        30,
        lambda: platform.run_list[0].update(
            status="succeeded", candidate_version="4", gate_verdict="passed"
        ),
    )

    def canary_fails() -> None:
        traffic.stats.record(clock(), 500, "4", False)
        platform.rollout_list[0]["status"] = end

    _at(clock, 60, canary_fails)
    return platform


async def test_bad_candidate_succeeds_when_the_canary_rolls_it_back_alone(
    clock: FakeClock, traffic: FakeTraffic
):
    traffic.stats.record(0.0, 500, "3", False)  # before the rollout: not the canary's doing
    platform = _bad_candidate_platform(clock, traffic, "rolled_back")

    result = await bad_candidate_scenario(
        platform, traffic, lambda _: None, clock=clock, sleep=clock.sleep
    )

    assert result.ok, result.reason
    assert result.reason == (
        "version 4 rolled back, champion 3 unchanged, no failed prediction outside the "
        "canary's share"
    )
    (_, run), (_, rollout) = platform.started
    assert run["options"] == {"defect": "errors"}
    assert run["auto_rollout"] is False
    assert rollout["candidate_version"] == "4"


async def test_bad_candidate_fails_when_the_defect_is_promoted(
    clock: FakeClock, traffic: FakeTraffic
):
    platform = _bad_candidate_platform(clock, traffic, "promoted")

    result = await bad_candidate_scenario(
        platform, traffic, lambda _: None, clock=clock, sleep=clock.sleep
    )

    assert not result.ok
    assert result.reason == "rollout 2 of the defective version promoted"


async def test_bad_candidate_fails_when_predictions_fail_outside_the_canary(
    clock: FakeClock, traffic: FakeTraffic
):
    platform = _bad_candidate_platform(clock, traffic, "rolled_back")
    _at(clock, 50, lambda: traffic.stats.record(clock(), 502, "3", False))

    result = await bad_candidate_scenario(
        platform, traffic, lambda _: None, clock=clock, sleep=clock.sleep
    )

    assert not result.ok
    assert result.reason == "1 failed predictions outside the canary's share"


async def test_bad_candidate_fails_when_the_pipeline_run_fails(
    clock: FakeClock, traffic: FakeTraffic
):
    platform = FakePlatform()
    _at(clock, 10, lambda: platform.run_list[0].update(status="failed", error="no data"))

    result = await bad_candidate_scenario(
        platform, traffic, lambda _: None, clock=clock, sleep=clock.sleep
    )

    assert not result.ok
    assert result.reason == "pipeline run 2 failed: no data"
    assert [kind for kind, _ in platform.started] == ["run"]


def test_the_champion_and_weights_come_from_the_route_table():
    routes = _routes("3", canary="4")

    assert champion_of(routes) == "3"
    assert champion_of({"models": {}}) is None
    assert weights_text(routes) == "v3 champion 80% · v4 canary 20%"


def test_the_quiet_view_prints_plain_lines():
    console = Console(record=True, width=200)
    view = PlainView(console, every_s=10, clock=lambda: 0.0)
    stats = TrafficStats()
    stats.record(0.0, 500, "4", False)

    view.note("drift: injected")
    view.refresh(Snapshot(stats, rate=25.0, routes=_routes("3", canary="4")))
    view.refresh(Snapshot(stats))  # within every_s: not printed again

    text = console.export_text()
    assert "drift: injected" in text
    assert "traffic 25.0 req/s, failed by version v4 1/1; routes v3 champion 80%" in text
    assert text.count("traffic") == 1


def test_the_live_view_shows_traffic_routes_runs_and_each_decision():
    console = Console(record=True, width=160, force_terminal=True)
    stats = TrafficStats()
    stats.record(0.0, 500, "4", False)
    with LiveView(console) as view:
        view.note("rollout 1: advance canary → canary weight 50% PASS")
        runs = [{"id": 2, "status": "running", "progress": 0.25, "stage": "training"}]
        view.refresh(Snapshot(stats, rate=25.0, routes=_routes("3", canary="4"), runs=runs))
    text = console.export_text()
    assert "25.0 req/s" in text
    assert "v3 champion 80% · v4 canary 20%" in text
    assert "advance canary → canary weight 50% PASS" in text
    assert "training" in text


class Recorder:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.snapshots: list[Snapshot] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def refresh(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def summary(self, results: Any, stats: TrafficStats) -> None:
        pass


async def test_the_watcher_notes_each_new_decision_and_run_state_once():
    import asyncio

    from orchard_cli.demo.view import watch_platform

    decision = {
        "at": 0.0,
        "from_status": "canary",
        "to_status": "rolled_back",
        "action": "rollback",
    }
    platform = FakePlatform()
    platform.rollout_list = [{"id": 4, "state": {"decisions": []}}]
    platform.triggers = lambda model: _async([])  # type: ignore[attr-defined]
    view, stop = Recorder(), asyncio.Event()
    task = asyncio.create_task(
        watch_platform(platform, TrafficStats(), view, stop, interval_s=0.01)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    platform.rollout_list[0]["state"]["decisions"].append(decision)
    platform.run_list.insert(0, {"id": 8, "status": "running", "stage": "training"})
    await asyncio.sleep(0.05)
    stop.set()
    await task

    assert sum("rollout 4:" in n and "rollback" in n for n in view.notes) == 1
    assert view.notes.count("pipeline run 8: running (training, 0%)") == 1
    assert view.snapshots


async def _async(value: Any) -> Any:
    return value
