"""Rollout metrics: decisions counted once each, gauges set from the stored state."""

from __future__ import annotations

from typing import Final

from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.rollouts import RolloutState, Transition

__all__ = ["observe_state", "observe_transition"]

_GAUGED: Final = ("canary", "shadowing", "experiment", "paused")


def observe_transition(metrics: RetrainingMetrics, model: str, transition: Transition) -> None:
    """Count the transition's new decisions and set the model's gauges."""
    for decision in transition.decisions:
        metrics.rollout_decisions.labels(model, decision.action).inc()
    observe_state(metrics, model, transition.state)


def observe_state(metrics: RetrainingMetrics, model: str, state: RolloutState) -> None:
    """Set the model's rollout gauges from its rollout's state (a finished one: all zero).

    The last change comes from the decisions, so a restarted service reports the same time.
    """
    unfinished = not state.terminal
    metrics.rollout_candidate_weight.labels(model).set(state.candidate_weight if unfinished else 0)
    for status in _GAUGED:
        active = unfinished and state.status.value == status
        metrics.rollout_active.labels(model, status).set(1 if active else 0)
    changes = [
        d.at
        for d in state.decisions
        if d.from_status is not d.to_status or d.from_step != d.to_step
    ]
    if changes:
        metrics.rollout_last_change.labels(model).set(max(changes))
