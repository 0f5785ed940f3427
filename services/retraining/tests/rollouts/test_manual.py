"""Manual promote and abort from every non-terminal state; events that cannot apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchard_retraining.rollouts import (
    TERMINAL,
    EvaluationUnreachable,
    InvalidEvent,
    ManualAbort,
    ManualPromote,
    RemoveAlias,
    RolloutStatus,
    SetAlias,
    Start,
    Tick,
    Verdict,
)


def pending(make_driver: Any) -> Any:
    return make_driver()


def shadowing(make_driver: Any) -> Any:
    rollout = make_driver(strategy="shadow_first", shadow_duration_s=60)
    rollout.send(Start())
    return rollout


def canary(make_driver: Any) -> Any:
    rollout = make_driver()
    rollout.send(Start())
    rollout.judge("PASS")
    return rollout


def experiment(make_driver: Any) -> Any:
    rollout = make_driver(strategy="ab", experiment_id="exp-1")
    rollout.send(Start())
    return rollout


def paused(make_driver: Any) -> Any:
    rollout = make_driver()
    rollout.send(Start())
    rollout.send(EvaluationUnreachable("refused"), after=5)
    return rollout


STATES: dict[str, Callable[[Any], Any]] = {
    "pending": pending,
    "shadowing": shadowing,
    "canary": canary,
    "experiment": experiment,
    "paused": paused,
}


@pytest.mark.parametrize("where", list(STATES))
def test_manual_promote_from_every_live_state(make_driver: Any, where: str) -> None:
    rollout = STATES[where](make_driver)
    assert rollout.state.status.value == where
    promoted = rollout.send(ManualPromote(actor="alice", reason="looks good"), after=1)
    assert rollout.state.status is RolloutStatus.PROMOTED
    assert rollout.weights == {"3": 0.0, "4": 100.0}
    assert rollout.state.mirror_percent == 0.0
    assert rollout.routes(promoted).weights == {"3": 0.0, "4": 100.0}
    assert SetAlias("credit-risk", "champion", "4") in promoted.actions
    assert SetAlias("credit-risk", "previous", "3") in promoted.actions
    assert RemoveAlias("credit-risk", "challenger") in promoted.actions
    decision = promoted.decision
    assert decision is not None
    assert (decision.action, decision.actor, decision.verdict) == ("promote", "alice", None)
    assert decision.from_status.value == where
    assert decision.reason == "promoted by hand: looks good"


@pytest.mark.parametrize("where", list(STATES))
def test_manual_abort_from_every_live_state(make_driver: Any, where: str) -> None:
    rollout = STATES[where](make_driver)
    aborted = rollout.send(ManualAbort(actor="bob"), after=1)
    assert rollout.state.status is RolloutStatus.ABORTED
    assert rollout.weights == {"3": 100.0, "4": 0.0}
    routes = rollout.routes(aborted)
    assert routes.weights == {"3": 100.0, "4": 0.0}
    assert routes.mirrors == ()
    assert routes.experiment is None
    assert SetAlias("credit-risk", "champion", "3") in aborted.actions
    assert RemoveAlias("credit-risk", "challenger") in aborted.actions
    assert aborted.decision is not None
    assert aborted.decision.action == "abort"
    assert aborted.decision.reason == "aborted by hand"


def finished(make_driver: Any, how: str) -> Any:
    rollout = make_driver()
    rollout.send(Start())
    if how == "promoted":
        rollout.send(ManualPromote())
    elif how == "rolled_back":
        rollout.judge("FAIL")
    else:
        rollout.send(ManualAbort())
    return rollout


@pytest.mark.parametrize("how", sorted(s.value for s in TERMINAL))
@pytest.mark.parametrize("command", [Start(), ManualPromote(), ManualAbort()])
def test_terminal_states_refuse_commands(make_driver: Any, how: str, command: Any) -> None:
    rollout = finished(make_driver, how)
    before = rollout.state
    with pytest.raises(InvalidEvent, match=f"already {how}"):
        rollout.send(command, after=1)
    assert rollout.state == before


@pytest.mark.parametrize("how", sorted(s.value for s in TERMINAL))
def test_terminal_states_ignore_late_observations(make_driver: Any, how: str) -> None:
    rollout = finished(make_driver, how)
    before = rollout.state
    for event in (Tick(), Verdict("PASS", {}, 10_000), EvaluationUnreachable("late")):
        late = rollout.send(event, after=600)
        assert (late.state, late.actions, late.decisions) == (before, (), ())


def test_promote_after_rollback_is_a_value_error(make_driver: Any) -> None:
    rollout = finished(make_driver, "rolled_back")
    with pytest.raises(ValueError, match="already rolled_back: ManualPromote cannot change it"):
        rollout.send(ManualPromote())


def test_start_twice_is_refused(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    with pytest.raises(InvalidEvent, match="already started"):
        rollout.send(Start())


@pytest.mark.parametrize("event", [Verdict("PASS", {}, 500), EvaluationUnreachable("x")])
def test_observations_before_start_are_refused(make_driver: Any, event: Any) -> None:
    with pytest.raises(InvalidEvent, match="has not started"):
        make_driver().send(event)


def test_tick_before_start_does_nothing(make_driver: Any) -> None:
    rollout = make_driver()
    ticked = rollout.tick(after=10_000)
    assert (ticked.state, ticked.actions, ticked.decisions) == (rollout.state, (), ())
    assert rollout.state.status is RolloutStatus.PENDING


@pytest.mark.parametrize("now", [float("nan"), float("inf")])
def test_now_must_be_finite(make_driver: Any, now: float) -> None:
    from orchard_retraining.rollouts import advance

    rollout = make_driver()
    with pytest.raises(ValueError, match="now must be a finite time"):
        advance(rollout.spec, rollout.state, Start(), now)


def test_state_from_another_spec_is_refused(make_driver: Any) -> None:
    from orchard_retraining.rollouts import advance

    rollout = canary(make_driver)
    other = make_driver(steps=[50])
    with pytest.raises(ValueError, match="not one of the spec's 1 steps"):
        advance(other.spec, rollout.state, Tick(), rollout.now)
    ab = make_driver(strategy="ab", experiment_id="e")
    with pytest.raises(ValueError, match="cannot be in phase canary"):
        advance(ab.spec, rollout.state, Tick(), rollout.now)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "MAYBE"}, "verdict must be one of PASS, FAIL, INCONCLUSIVE"),
        ({"verdict": "PASS", "samples": -1}, "samples must be a non-negative integer"),
        ({"verdict": "PASS", "since": float("nan")}, "since must be a finite time"),
    ],
)
def test_invalid_verdicts(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verdict(**kwargs)


@pytest.mark.parametrize(
    "payload", [{}, {"verdict": "PASS"}, {"verdict": "PASS", "sample_sizes": {"candidate": "x"}}]
)
def test_compare_answer_without_verdict_or_samples(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="compare answer has no"):
        Verdict.from_compare(payload)
