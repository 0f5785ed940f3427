"""Properties over random event sequences: weights, FAIL, terminal states, restarts."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchard_retraining.rollouts import (
    EvaluationUnreachable,
    InvalidEvent,
    ManualAbort,
    ManualPromote,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    SetRoutes,
    Start,
    Tick,
    Verdict,
    advance,
)

SPECS = st.builds(
    RolloutSpec,
    model=st.just("m"),
    champion_version=st.just("1"),
    candidate_version=st.just("2"),
    strategy=st.sampled_from(["canary", "ab", "shadow_first"]),
    steps=st.sampled_from([(5, 25, 50, 100), (10, 50), (1, 2, 3, 4, 99), (50,)]),
    step_interval_s=st.sampled_from([30, 60]),
    min_samples=st.sampled_from([1, 100]),
    max_wait_s=st.sampled_from([120, 600]),
    on_timeout=st.sampled_from(["rollback", "promote", "hold"]),
    shadow_percent=st.sampled_from([10, 100]),
    shadow_duration_s=st.sampled_from([60, 120]),
    experiment_id=st.just("exp"),
    experiment_duration_s=st.sampled_from([300, 900]),
    experiment_stop=st.sampled_from(["fixed", "sequential"]),
)

# (kind, verdict, samples, window, gap): ``window`` picks a verdict's ``since``.
STEPS = st.tuples(
    # Mostly the world's events; commands now and then, so that rollouts get somewhere.
    st.sampled_from(
        ["tick"] * 12 + ["verdict"] * 12 + ["down"] * 3 + ["start", "promote", "abort"]
    ),
    st.sampled_from(["PASS", "PASS", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]),
    st.sampled_from([0, 50, 150, 5_000]),
    st.sampled_from(["current", "current", "none", "stale"]),
    st.floats(min_value=0, max_value=400),
)


def event_for(step: tuple[Any, ...], state: RolloutState) -> Any:
    kind, verdict, samples, window, _gap = step
    if kind == "verdict":
        since = {"current": state.phase_started_at, "none": None, "stale": -1.0}[window]
        return Verdict(verdict, {"verdict": verdict}, samples, since)
    return {
        "start": Start(),
        "tick": Tick(),
        "down": EvaluationUnreachable("refused"),
        "promote": ManualPromote(),
        "abort": ManualAbort(),
    }[kind]


@settings(max_examples=300, deadline=None)
@given(
    spec=SPECS,
    started=st.booleans(),
    steps=st.lists(STEPS, max_size=80),
    restart_at=st.integers(0, 80),
)
def test_random_event_sequences_keep_the_invariants(
    spec: RolloutSpec, started: bool, steps: list[tuple[Any, ...]], restart_at: int
) -> None:
    state = advance(spec, RolloutState(), Start(), 0.0).state if started else RolloutState()
    now = 1_000.0
    weight_cap = 100.0  # after a FAIL, the candidate's weight may only fall
    for index, step in enumerate(steps):
        if index == restart_at:  # a restart: the stored state must carry on the same
            state = RolloutState.from_dict(json.loads(json.dumps(state.to_dict())))
        now += step[-1]
        event = event_for(step, state)
        before = state
        try:
            transition = advance(spec, state, event, now)
        except InvalidEvent:
            assert before.terminal or isinstance(event, Start | Verdict | EvaluationUnreachable)
            continue
        state = transition.state

        for action in transition.actions:
            if isinstance(action, SetRoutes):
                assert sum(action.weights.values()) == 100.0
                assert all(0 <= w <= 100 for w in action.weights.values())
                assert action.weights[spec.candidate_version] <= weight_cap
                assert all(0 < m.percent <= 100 for m in action.mirrors)
        assert 0 <= state.candidate_weight <= weight_cap
        assert state.candidate_weight + state.champion_weight == 100.0

        if before.terminal:
            assert state == before
            assert transition.actions == ()
        applied_fail = (
            isinstance(event, Verdict)
            and event.verdict == "FAIL"
            and not before.terminal
            and event.since in (None, before.phase_started_at)
        )
        if applied_fail:
            assert state.status is RolloutStatus.ROLLED_BACK
            weight_cap = state.candidate_weight
        if state.status is RolloutStatus.PAUSED:
            # Paused never moves traffic: no step, no promotion.
            assert not any(isinstance(a, SetRoutes) for a in transition.actions)
            assert state.candidate_weight == before.candidate_weight
        for decision in transition.decisions:
            assert decision.at == now
        assert len(state.decisions) >= len(before.decisions)
        assert state.decisions[: len(before.decisions)] == before.decisions
