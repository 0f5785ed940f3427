"""The demo's scenarios and how each one is judged.

- ``drift``: healthy traffic, then drifted traffic; hands off, the platform must notice,
  retrain and promote a new champion.
- ``bad-candidate``: a person ships a candidate that passed its offline checks but fails in
  serving; the canary must roll it back before it reaches more than its share of traffic.

The scenarios talk to the platform through :class:`Platform` and to the traffic through
:class:`Traffic`, and take their clock, so their outcome logic is tested with fakes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from orchard_cli.demo.traffic import MODEL, TrafficStats

__all__ = [
    "SCENARIOS",
    "Platform",
    "ScenarioResult",
    "Traffic",
    "bad_candidate_scenario",
    "champion_of",
    "drift_scenario",
]

SCENARIOS: Final = ("drift", "bad-candidate")
FAILED_RUN: Final = frozenset({"failed", "cancelled"})


class Platform(Protocol):
    """What the scenarios ask retraining (see ``orchard_cli.demo.platform``)."""

    async def rollouts(self, model: str) -> list[dict[str, Any]]: ...
    async def rollout(self, rollout_id: Any) -> dict[str, Any]: ...
    async def pipeline_runs(self, model: str) -> list[dict[str, Any]]: ...
    async def pipeline_run(self, run_id: Any) -> dict[str, Any]: ...
    async def routes(self) -> dict[str, Any]: ...
    async def start_pipeline_run(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def start_rollout(self, body: Mapping[str, Any]) -> dict[str, Any]: ...


class Traffic(Protocol):
    """The running traffic simulator."""

    stats: TrafficStats

    def set_drift(self, shift: float, concept: float) -> None: ...


Note = Callable[[str], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ScenarioResult:
    """How a scenario ended: ``ok``, and why in words."""

    name: str
    ok: bool
    reason: str


def champion_of(routes: Mapping[str, Any], model: str = MODEL) -> str | None:
    """The version the route table gives the role ``champion`` for ``model``."""
    entry = (routes.get("models") or {}).get(model) or {}
    for version in entry.get("versions") or []:
        if version.get("role") == "champion":
            return str(version.get("version"))
    return None


async def drift_scenario(
    platform: Platform,
    traffic: Traffic,
    note: Note,
    *,
    warmup_s: float = 60.0,
    timeout_s: float = 900.0,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep,
) -> ScenarioResult:
    """Warm up on healthy traffic, inject drift, wait for a promoted retrained champion."""
    name = "drift"
    champion = champion_of(await platform.routes())
    old_rollouts = {r["id"] for r in await platform.rollouts(MODEL)}
    old_runs = {r["id"] for r in await platform.pipeline_runs(MODEL)}
    note(f"drift: champion is version {champion}; {warmup_s:g} s of healthy traffic first")
    await sleep(warmup_s)
    traffic.set_drift(1.0, 1.0)
    note("drift: injected (covariate shift 1.0, concept drift 1.0) — hands off from here")
    deadline = clock() + timeout_s
    while clock() < deadline:
        for run in await platform.pipeline_runs(MODEL):
            if run["id"] in old_runs:
                continue
            if run.get("status") in FAILED_RUN:
                return ScenarioResult(
                    name, False, f"pipeline run {run['id']} {run['status']}: {run.get('error')}"
                )
            if run.get("status") == "succeeded" and run.get("gate_verdict") == "failed":
                return ScenarioResult(
                    name, False, f"pipeline run {run['id']}'s candidate failed the quality gate"
                )
        for rollout in await platform.rollouts(MODEL):
            if rollout["id"] in old_rollouts:
                continue
            status, candidate = rollout.get("status"), str(rollout.get("candidate_version"))
            if status == "promoted" and candidate != champion:
                return ScenarioResult(
                    name,
                    True,
                    f"drift detected, retrained and promoted: version {candidate} replaced "
                    f"{champion} (rollout {rollout['id']})",
                )
            if status in ("rolled_back", "aborted"):
                return ScenarioResult(
                    name, False, f"rollout {rollout['id']} of version {candidate} {status}"
                )
        await sleep(poll_s)
    return ScenarioResult(name, False, f"no promoted retrained version after {timeout_s:g} s")


async def _finished(
    get: Callable[[], Awaitable[dict[str, Any]]],
    done: frozenset[str],
    *,
    deadline: float,
    clock: Callable[[], float],
    sleep: Sleep,
    poll_s: float,
) -> dict[str, Any] | None:
    while clock() < deadline:
        current = await get()
        if current.get("status") in done:
            return current
        await sleep(poll_s)
    return None


async def bad_candidate_scenario(
    platform: Platform,
    traffic: Traffic,
    note: Note,
    *,
    timeout_s: float = 900.0,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep,
) -> ScenarioResult:
    """Ship a candidate that fails in serving; the canary must roll it back, alone."""
    name = "bad-candidate"
    deadline = clock() + timeout_s
    champion = champion_of(await platform.routes())
    run = await platform.start_pipeline_run(
        {
            "model": MODEL,
            "options": {"defect": "errors"},
            "auto_rollout": False,
            "actor": "orchard demo",
            "reason": "demo: a candidate that passes offline checks but fails in serving",
        }
    )
    note(f"bad-candidate: pipeline run {run['id']} builds a defective candidate")

    async def get_run() -> dict[str, Any]:
        return await platform.pipeline_run(run["id"])

    finished = await _finished(
        get_run,
        frozenset({"succeeded", *FAILED_RUN}),
        deadline=deadline,
        clock=clock,
        sleep=sleep,
        poll_s=poll_s,
    )
    if finished is None:
        return ScenarioResult(name, False, f"pipeline run {run['id']} did not finish in time")
    if finished.get("status") != "succeeded" or not finished.get("candidate_version"):
        return ScenarioResult(
            name,
            False,
            f"pipeline run {run['id']} {finished.get('status')}: {finished.get('error')}",
        )
    candidate = str(finished["candidate_version"])
    failed_before = traffic.stats.failed_outside(candidate)
    rollout = await platform.start_rollout(
        {"model": MODEL, "candidate_version": candidate, "actor": "orchard demo"}
    )
    note(f"bad-candidate: rollout {rollout['id']} of version {candidate} started by hand")

    async def get_rollout() -> dict[str, Any]:
        return await platform.rollout(rollout["id"])

    ended = await _finished(
        get_rollout,
        frozenset({"promoted", "rolled_back", "aborted"}),
        deadline=deadline,
        clock=clock,
        sleep=sleep,
        poll_s=poll_s,
    )
    if ended is None:
        return ScenarioResult(name, False, f"rollout {rollout['id']} did not finish in time")
    if ended.get("status") != "rolled_back":
        return ScenarioResult(
            name, False, f"rollout {rollout['id']} of the defective version {ended.get('status')}"
        )
    now_champion = champion_of(await platform.routes())
    if now_champion != champion:
        return ScenarioResult(
            name, False, f"the champion changed from {champion} to {now_champion}"
        )
    outside = traffic.stats.failed_outside(candidate) - failed_before
    if outside:
        return ScenarioResult(
            name, False, f"{outside} failed predictions outside the canary's share"
        )
    return ScenarioResult(
        name,
        True,
        f"version {candidate} rolled back, champion {champion} unchanged, no failed "
        "prediction outside the canary's share",
    )
