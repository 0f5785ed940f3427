"""Evaluation unreachable: the rollout pauses, never advances, resumes when evaluation answers."""

from __future__ import annotations

from typing import Any

from orchard_retraining.rollouts import (
    EvaluationUnreachable,
    ManualAbort,
    RolloutStatus,
    Start,
)


def test_unreachable_pauses_and_ticks_never_advance(make_driver: Any) -> None:
    rollout = make_driver(max_wait_s=600, on_timeout="promote")
    rollout.send(Start())
    rollout.tick(after=60)
    paused = rollout.send(EvaluationUnreachable("connect timeout after 5 s"))
    assert rollout.state.status is RolloutStatus.PAUSED
    assert rollout.state.resume_status is RolloutStatus.CANARY
    assert rollout.state.pause_reason == "evaluation unreachable: connect timeout after 5 s"
    assert paused.actions == ()  # weights are held where they are
    assert paused.decision is not None
    assert paused.decision.action == "pause"
    paused_at = rollout.now

    probes = 0
    for _ in range(200):  # far past max_wait_s: still no step, no promotion
        tick = rollout.tick(after=60)
        probes += len(rollout.asks(tick))
        assert tick.decisions == ()
        assert rollout.state.status is RolloutStatus.PAUSED
        assert rollout.state.candidate_weight == 5.0
        if probes % 10 == 0:
            rollout.send(EvaluationUnreachable("still down"))
    assert probes == 200  # it keeps asking, once per interval
    assert rollout.state.pause_reason == "evaluation unreachable: still down"
    assert rollout.state.paused_for(rollout.now) == rollout.now - paused_at
    assert [d.action for d in rollout.state.decisions] == ["start", "pause"]


def test_probe_asks_for_the_interrupted_window(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    since = rollout.state.phase_started_at
    rollout.send(EvaluationUnreachable("503"), after=60)
    [ask] = rollout.asks(rollout.tick(after=60))
    assert ask.since == since
    assert ask.candidate_weight == 0.05


def test_resumes_and_judges_when_evaluation_answers(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.send(EvaluationUnreachable("refused"), after=60)
    rollout.tick(after=3_600)
    answered = rollout.verdict("PASS")
    assert [d.action for d in answered.decisions] == ["resume", "advance"]
    assert answered.decisions[0].from_status is RolloutStatus.PAUSED
    assert answered.decisions[0].to_status is RolloutStatus.CANARY
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.step == 1
    assert rollout.state.paused_since is None
    assert rollout.state.pause_reason is None
    assert rollout.state.paused_s == 0.0  # a new step starts its own clock


def test_resume_on_fail_rolls_back(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.send(EvaluationUnreachable("refused"), after=60)
    answered = rollout.verdict("FAIL", after=120)
    assert [d.action for d in answered.decisions] == ["resume", "rollback"]
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
    assert rollout.routes(answered).weights == {"3": 100.0, "4": 0.0}


def test_resume_on_inconclusive_keeps_waiting(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.send(EvaluationUnreachable("refused"), after=60)
    answered = rollout.verdict("INCONCLUSIVE", after=60)
    assert [d.action for d in answered.decisions] == ["resume", "wait"]
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.paused_s == 60.0


def test_paused_rollout_can_be_aborted(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.judge("PASS")
    rollout.send(EvaluationUnreachable("refused"), after=10)
    aborted = rollout.send(ManualAbort(actor="oncall", reason="evaluation down for hours"))
    assert rollout.state.status is RolloutStatus.ABORTED
    assert rollout.routes(aborted).weights == {"3": 100.0, "4": 0.0}
    assert aborted.decision is not None
    assert aborted.decision.from_status is RolloutStatus.PAUSED
    assert aborted.decision.reason == "aborted by hand: evaluation down for hours"
