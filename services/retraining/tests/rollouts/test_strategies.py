"""Shadow first (shadow → canary) and A/B experiments (fixed duration, sequential stop)."""

from __future__ import annotations

from typing import Any

import pytest

from orchard_retraining.rollouts import RolloutStatus, SetAlias, Start


def shadow(make_driver: Any, **settings: Any) -> Any:
    return make_driver(
        strategy="shadow_first", shadow_percent=20, shadow_duration_s=300, **settings
    )


def test_shadow_mirrors_then_continues_as_canary(make_driver: Any) -> None:
    rollout = shadow(make_driver)
    started = rollout.send(Start())
    assert rollout.state.status is RolloutStatus.SHADOWING
    assert rollout.state.mirror_percent == 20.0
    routes = rollout.routes(started)
    assert routes.weights == {"3": 100.0, "4": 0.0}
    assert routes.roles == {"3": "champion"}
    assert [(m.version, m.percent) for m in routes.mirrors] == [("4", 20.0)]

    assert rollout.tick(after=299).actions == ()  # the shadow runs shadow_duration_s first
    [ask] = rollout.asks(rollout.tick(after=1))
    assert ask.candidate_shadow
    assert ask.candidate_weight is None
    moved = rollout.verdict("PASS")
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.step == 0
    assert rollout.state.mirror_percent == 0.0
    canary = rollout.routes(moved)
    assert canary.weights == {"3": 95.0, "4": 5.0}
    assert canary.mirrors == ()
    assert moved.decision is not None
    assert "shadow → canary 5 %" in moved.decision.reason

    rollout.judge("PASS")
    rollout.judge("PASS")
    rollout.judge("PASS")
    assert rollout.state.status is RolloutStatus.PROMOTED


def test_shadow_fail_rolls_back_and_drops_the_mirror(make_driver: Any) -> None:
    rollout = shadow(make_driver)
    rollout.send(Start())
    rollout.tick(after=300)
    failed = rollout.verdict("FAIL")
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
    assert rollout.state.mirror_percent == 0.0
    assert rollout.routes(failed).mirrors == ()


def test_shadow_pass_before_its_duration_does_not_advance(make_driver: Any) -> None:
    rollout = shadow(make_driver)
    rollout.send(Start())
    rollout.verdict("PASS", after=120)
    assert rollout.state.status is RolloutStatus.SHADOWING


def test_shadow_timeout_promote_continues_as_canary(make_driver: Any) -> None:
    rollout = shadow(make_driver, max_wait_s=300, on_timeout="promote")
    rollout.send(Start())
    rollout.tick(after=300)
    rollout.verdict("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.CANARY
    assert rollout.state.candidate_weight == 5.0


def experiment(make_driver: Any, **settings: Any) -> Any:
    values: dict[str, Any] = {
        "strategy": "ab",
        "experiment_id": "exp-42",
        "experiment_duration_s": 3_600,
        "experiment_percent": 50,
        "sticky_key": "X-User",
    }
    values.update(settings)
    return make_driver(**values)


def test_experiment_sets_sticky_arms(make_driver: Any) -> None:
    rollout = experiment(make_driver)
    started = rollout.send(Start())
    assert rollout.state.status is RolloutStatus.EXPERIMENT
    routes = rollout.routes(started)
    assert routes.weights == {"3": 50.0, "4": 50.0}
    assert routes.roles == {"3": "arm", "4": "arm"}
    assert routes.experiment == "exp-42"
    assert routes.sticky_key == "X-User"
    assert SetAlias("credit-risk", "challenger", "4") in started.actions


def test_fixed_experiment_judges_only_at_the_end(make_driver: Any) -> None:
    rollout = experiment(make_driver, experiment_stop="fixed")
    rollout.send(Start())
    for _ in range(59):
        assert rollout.tick(after=60).actions == ()
    early = rollout.verdict("PASS", samples=5_000)  # no early stop on PASS
    assert rollout.state.status is RolloutStatus.EXPERIMENT
    assert early.decision is not None
    assert early.decision.action == "wait"
    [ask] = rollout.asks(rollout.tick(after=60))
    assert (ask.kind, ask.experiment, ask.candidate_weight) == ("experiment", "exp-42", 0.5)
    rollout.verdict("PASS", samples=5_000)
    assert rollout.state.status is RolloutStatus.PROMOTED


@pytest.mark.parametrize(
    ("on_timeout", "status"),
    [
        ("rollback", RolloutStatus.ROLLED_BACK),
        ("promote", RolloutStatus.PROMOTED),
        ("hold", RolloutStatus.EXPERIMENT),
    ],
)
def test_fixed_experiment_inconclusive_at_the_end(
    make_driver: Any, on_timeout: str, status: RolloutStatus
) -> None:
    rollout = experiment(make_driver, experiment_stop="fixed", on_timeout=on_timeout)
    rollout.send(Start())
    rollout.tick(after=3_600)
    rollout.verdict("INCONCLUSIVE")
    assert rollout.state.status is status


def test_fixed_experiment_fail_stops_it_at_once(make_driver: Any) -> None:
    rollout = experiment(make_driver, experiment_stop="fixed")
    rollout.send(Start())
    rollout.verdict("FAIL", after=600)
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
    assert rollout.weights == {"3": 100.0, "4": 0.0}


@pytest.mark.parametrize(
    ("verdict", "status"),
    [("PASS", RolloutStatus.PROMOTED), ("FAIL", RolloutStatus.ROLLED_BACK)],
)
def test_sequential_experiment_stops_early(
    make_driver: Any, verdict: str, status: RolloutStatus
) -> None:
    rollout = experiment(make_driver, experiment_stop="sequential")
    rollout.send(Start())
    rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.EXPERIMENT
    rollout.judge(verdict)
    assert rollout.state.status is status
    assert rollout.now - rollout.state.started_at == 120  # long before the hour


def test_sequential_experiment_needs_min_samples(make_driver: Any) -> None:
    rollout = experiment(make_driver, min_samples=1_000)
    rollout.send(Start())
    rollout.judge("PASS", samples=999)
    assert rollout.state.status is RolloutStatus.EXPERIMENT
    rollout.judge("PASS", samples=1_000)
    assert rollout.state.status is RolloutStatus.PROMOTED


def test_sequential_experiment_times_out_at_its_duration(make_driver: Any) -> None:
    rollout = experiment(make_driver, experiment_duration_s=300)
    rollout.send(Start())
    for _ in range(4):
        rollout.judge("INCONCLUSIVE")
        assert rollout.state.status is RolloutStatus.EXPERIMENT
    rollout.judge("INCONCLUSIVE")
    assert rollout.state.status is RolloutStatus.ROLLED_BACK
