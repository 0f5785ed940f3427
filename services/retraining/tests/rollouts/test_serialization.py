"""States survive a JSON round trip, and a rollout restarted mid-step carries on the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchard_retraining.rollouts import (
    EvaluationUnreachable,
    RolloutState,
    RolloutStatus,
    Start,
    Tick,
    Transition,
    Verdict,
    advance,
)


def stored(state: RolloutState) -> RolloutState:
    """What a restart reads back from the database."""
    return RolloutState.from_dict(json.loads(json.dumps(state.to_dict())))


def test_every_state_of_a_rollout_round_trips(make_driver: Any) -> None:
    rollout = make_driver(strategy="shadow_first", shadow_duration_s=60, on_timeout="hold")
    assert stored(rollout.state) == rollout.state
    rollout.send(Start())
    rollout.judge("PASS")
    rollout.send(EvaluationUnreachable("refused"), after=5)
    assert rollout.state.status is RolloutStatus.PAUSED
    assert stored(rollout.state) == rollout.state
    rollout.judge("INCONCLUSIVE")
    rollout.judge("FAIL")
    assert stored(rollout.state) == rollout.state
    assert len(rollout.state.decisions) == 6


def test_restart_mid_step_gives_the_same_result(make_driver: Any) -> None:
    rollout = make_driver(max_wait_s=300)
    rollout.send(Start())
    rollout.judge("PASS")
    rollout.tick(after=60)  # asked; the process dies before the answer comes
    assert rollout.state.step == 1
    t = rollout.now
    since = rollout.state.phase_started_at
    rest: list[tuple[Any, float]] = [
        (Verdict("INCONCLUSIVE", {"verdict": "INCONCLUSIVE"}, 50, since), t + 1),
        (Tick(), t + 30),
        (Tick(), t + 61),
        (EvaluationUnreachable("refused"), t + 62),
        (Tick(), t + 200),
        (Verdict("PASS", {"verdict": "PASS"}, 800, since), t + 201),
        (Tick(), t + 300),
    ]

    def play(state: RolloutState) -> list[Transition]:
        out = []
        for event, now in rest:
            transition = advance(rollout.spec, state, event, now)
            state = transition.state
            out.append(transition)
        return out

    uninterrupted = play(rollout.state)
    restarted = play(stored(rollout.state))
    assert restarted == uninterrupted
    assert uninterrupted[-1].state.step == 2
    assert [d.action for d in uninterrupted[-1].state.decisions][-4:] == [
        "wait",
        "pause",
        "resume",
        "advance",
    ]


def test_to_dict_is_plain_json(make_driver: Any) -> None:
    rollout = make_driver()
    rollout.send(Start())
    rollout.judge("PASS")
    data = rollout.state.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "canary"
    assert data["decisions"][-1]["verdict"]["verdict"] == "PASS"
    assert rollout.routes(rollout.transitions[-1]).to_dict()["weights"] == {"3": 75.0, "4": 25.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 2}, "unsupported rollout state schema 2"),
        ({"status": "sleeping"}, "sleeping"),
        ({"step": "1"}, "step must be an integer"),
        ({"candidate_weight": None}, "candidate_weight must be a finite number"),
        ({"decisions": {}}, "decisions must be a list"),
        ({"decisions": [{"at": 1}]}, "decision is missing 'from_status'"),
    ],
)
def test_from_dict_rejects_damaged_state(
    make_driver: Any, change: dict[str, Any], message: str
) -> None:
    rollout = make_driver()
    rollout.send(Start())
    with pytest.raises(ValueError, match=message):
        RolloutState.from_dict({**rollout.state.to_dict(), **change})
    data = rollout.state.to_dict()
    del data["paused_s"]
    with pytest.raises(ValueError, match="rollout state is missing 'paused_s'"):
        RolloutState.from_dict(data)
