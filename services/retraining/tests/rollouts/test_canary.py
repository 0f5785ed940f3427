"""Canary rollouts: steps judged one by one, FAIL rolls back, timeouts per on_timeout."""

from __future__ import annotations

from typing import Any

import pytest

from orchard_retraining.rollouts import (
    RemoveAlias,
    RolloutStatus,
    SetAlias,
    Start,
    Tick,
    Verdict,
)


def test_start_sets_first_step_and_challenger_alias(make_driver: Any) -> None:
    rollout = make_driver()
    started = rollout.send(Start(actor="ci"))
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.step == 0
    routes = rollout.routes(started)
    assert routes.weights == {"3": 95.0, "4": 5.0}
    assert routes.roles == {"3": "champion", "4": "canary"}
    assert routes.mirrors == ()
    assert routes.experiment is None
    assert SetAlias("credit-risk", "challenger", "4") in started.actions
    assert started.decision is not None
    assert started.decision.action == "start"
    assert started.decision.actor == "ci"


def test_canary_walks_every_step_to_promotion(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    seen = [rollout.state.candidate_weight]
    for _ in range(2):
        moved = rollout.judge("PASS")
        assert moved.decision is not None
        assert moved.decision.action == "advance"
        assert moved.decision.verdict is not None
        assert moved.decision.verdict["verdict"] == "PASS"
        assert moved.decision.samples == 500
        assert rollout.routes(moved).weights[rollout.spec.candidate_version] == (
            rollout.state.candidate_weight
        )
        seen.append(rollout.state.candidate_weight)
    assert seen == [5.0, 25.0, 50.0]

    promoted = rollout.judge("PASS")  # the 100 % step is the promotion itself
    assert rollout.state.status is RolloutStatus.PROMOTED
    assert rollout.state.terminal
    assert rollout.weights == {"3": 0.0, "4": 100.0}
    routes = rollout.routes(promoted)
    assert routes.weights == {"3": 0.0, "4": 100.0}
    assert routes.roles == {"4": "champion"}
    assert promoted.actions[1:] == (
        SetAlias("credit-risk", "champion", "4"),
        SetAlias("credit-risk", "previous", "3"),
        RemoveAlias("credit-risk", "challenger"),
    )
    assert [d.action for d in rollout.state.decisions] == [
        "start",
        "advance",
        "advance",
        "promote",
    ]


def test_steps_ending_below_100_promote_after_the_last(make_driver: Any) -> None:
    rollout = make_driver(steps=[10, 50])
    rollout.send(Start())
    rollout.judge("PASS")
    assert rollout.state.candidate_weight == 50.0
    rollout.judge("PASS")
    assert rollout.state.status is RolloutStatus.PROMOTED


def test_fail_at_second_step_rolls_back_at_once(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.judge("PASS")
    assert rollout.state.step == 1
    failed = rollout.verdict("FAIL", samples=40, after=1, failing=("latency",))
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
    assert rollout.weights == {"3": 100.0, "4": 0.0}
    routes = rollout.routes(failed)
    assert routes.weights == {"3": 100.0, "4": 0.0}
    assert routes.roles == {"3": "champion"}
    assert SetAlias("credit-risk", "champion", "3") in failed.actions
    assert RemoveAlias("credit-risk", "challenger") in failed.actions
    decision = failed.decision
    assert decision is not None
    assert (decision.from_status, decision.to_status) == (
        RolloutStatus.CANARY,
        RolloutStatus.ROLLED_BACK,
    )
    assert decision.from_step == 1
    assert decision.action == "rollback"
    assert "latency" in decision.reason
    assert decision.verdict is not None
    assert decision.verdict["signals"][-1] == {"metric": "latency", "verdict": "FAIL"}


def test_pass_on_too_few_samples_does_not_advance(make_driver: Any) -> None:
    rollout = make_driver(min_samples=200)
    rollout.send(Start())
    waited = rollout.judge("PASS", samples=199)
    assert rollout.state.step == 0
    assert waited.actions == ()
    assert waited.decision is not None
    assert waited.decision.action == "wait"
    assert "fewer than min_samples 200" in waited.decision.reason
    rollout.judge("PASS", samples=200)
    assert rollout.state.step == 1


def test_pass_before_the_step_interval_does_not_advance(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    early = rollout.verdict("PASS", after=30)
    assert rollout.state.step == 0
    assert early.decision is not None
    assert early.decision.action == "wait"
    rollout.verdict("PASS", after=30)
    assert rollout.state.step == 1


def test_ticks_ask_evaluation_once_per_interval(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    started_at = rollout.state.phase_started_at
    assert rollout.tick(after=59).actions == ()
    asked = rollout.asks(rollout.tick(after=1))
    assert len(asked) == 1
    ask = asked[0]
    assert (ask.kind, ask.model, ask.baseline, ask.candidate) == (
        "compare",
        "credit-risk",
        "3",
        "4",
    )
    assert ask.since == started_at
    assert ask.candidate_weight == pytest.approx(0.05)
    assert ask.min_samples == 100
    assert not ask.candidate_shadow
    assert rollout.tick(after=30).actions == ()  # asked 30 s ago
    assert len(rollout.asks(rollout.tick(after=30))) == 1
    assert rollout.tick().decisions == ()  # asking is not a decision


def test_inconclusive_waits_then_rolls_back_by_default(make_driver: Any) -> None:
    rollout = make_driver(max_wait_s=180)
    rollout.send(Start())
    for _ in range(2):
        waited = rollout.judge("INCONCLUSIVE")
        assert rollout.state.status is RolloutStatus.CANARY
        assert waited.decision is not None
        assert waited.decision.action == "wait"
    timed_out = rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
    assert rollout.routes(timed_out).weights == {"3": 100.0, "4": 0.0}
    assert timed_out.decision is not None
    assert "on_timeout=rollback" in timed_out.decision.reason


def test_inconclusive_timeout_promote_moves_on_a_step(make_driver: Any) -> None:
    rollout = make_driver(max_wait_s=120, on_timeout="promote")
    rollout.send(Start())
    rollout.judge("INCONCLUSIVE")
    moved = rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.candidate_weight == 25.0
    assert moved.decision is not None
    assert moved.decision.action == "advance"
    assert "on_timeout=promote" in moved.decision.reason
    # The next step is still judged: a FAIL there rolls back.
    rollout.judge("FAIL")
    assert rollout.state.status is RolloutStatus.ROLLED_BACK


def test_inconclusive_timeout_promote_at_last_step_promotes(make_driver: Any) -> None:
    rollout = make_driver(steps=[50], max_wait_s=60, on_timeout="promote")
    rollout.send(Start())
    promoted = rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.PROMOTED
    assert rollout.routes(promoted).weights == {"3": 0.0, "4": 100.0}


def test_inconclusive_timeout_hold_keeps_judging(make_driver: Any) -> None:
    rollout = make_driver(max_wait_s=60, on_timeout="hold")
    rollout.send(Start())
    held = rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.timed_out_at == rollout.now
    assert held.decision is not None
    assert held.decision.action == "hold"
    assert held.actions == ()
    for _ in range(5):
        again = rollout.judge("INCONCLUSIVE")
        assert again.decision is not None
        assert again.decision.action == "wait"
        assert rollout.state.candidate_weight == 5.0
    rollout.judge("PASS")
    assert rollout.state.step == 1
    assert rollout.state.timed_out_at is None  # a new step has its own wait


def test_stale_verdict_for_an_earlier_step_is_ignored(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    first_window = rollout.state.phase_started_at
    rollout.judge("PASS")
    before = rollout.state
    late = rollout.send(Verdict("FAIL", {}, 500, since=first_window), after=1)
    assert late.state == before
    assert late.actions == ()
    assert late.decisions == ()


def test_verdict_without_window_is_taken_as_current(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.send(Tick(), after=60)
    rollout.send(Verdict("PASS", {"verdict": "PASS"}, 150))
    assert rollout.state.step == 1


def test_paused_time_does_not_count_against_the_wait(make_driver: Any) -> None:
    from orchard_retraining.rollouts import EvaluationUnreachable

    rollout = make_driver(max_wait_s=120)
    rollout.send(Start())
    rollout.send(EvaluationUnreachable("connection refused"), after=60)
    rollout.tick(after=1_000)
    waited = rollout.verdict("INCONCLUSIVE", after=1)
    assert rollout.state.status is RolloutStatus.CANARY
    assert waited.decision is not None
    assert waited.decision.action == "wait"
    timed_out = rollout.verdict("INCONCLUSIVE", after=60)
    assert timed_out.decision is not None
    assert timed_out.decision.action == "rollback"


def test_window_start_rounded_by_storage_still_matches(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start(), after=0.123456789)
    rollout.tick(after=60)
    since = round(rollout.state.phase_started_at, 3)  # a store kept milliseconds
    rollout.send(Verdict("PASS", {"verdict": "PASS"}, 500, since=since))
    assert rollout.state.step == 1
