"""Rollout specs: validation with actionable messages, and the JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchard_retraining.rollouts import ExperimentStop, OnTimeout, RolloutSpec, Strategy

BASE: dict[str, Any] = {"model": "credit-risk", "champion_version": "3", "candidate_version": "4"}


def test_defaults_are_a_valid_canary() -> None:
    spec = RolloutSpec(**BASE)
    assert spec.strategy is Strategy.CANARY
    assert spec.steps == (5.0, 25.0, 50.0, 100.0)
    assert spec.on_timeout is OnTimeout.ROLLBACK


def test_strings_and_lists_from_json_are_coerced() -> None:
    spec = RolloutSpec(**BASE, strategy="ab", experiment_id="e", experiment_stop="fixed", steps=[1])
    assert spec.strategy is Strategy.AB
    assert spec.experiment_stop is ExperimentStop.FIXED
    assert spec.steps == (1.0,)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": ""}, "model must be a non-empty string"),
        ({"candidate_version": "3"}, "candidate_version must differ from champion_version"),
        ({"steps": []}, "steps must list at least one percentage"),
        ({"steps": "5,25"}, "steps must be a list of percentages"),
        ({"steps": [5, "x"]}, "steps must be a finite number"),
        ({"steps": [0, 50]}, r"steps must lie in \(0, 100\]: 0 does not"),
        ({"steps": [5, 150]}, r"steps must lie in \(0, 100\]: 150 does not"),
        ({"steps": [5, 50, 25]}, "steps must increase strictly: 25 follows 50"),
        ({"steps": [5, 5]}, "steps must increase strictly"),
        ({"steps": [100]}, "at least one step below 100"),
        ({"step_interval_s": 0}, "step_interval_s must be > 0"),
        ({"max_wait_s": float("nan")}, "max_wait_s must be a finite number"),
        ({"step_interval_s": 700, "max_wait_s": 600}, "step_interval_s .* must not exceed"),
        ({"min_samples": 0}, "min_samples must be >= 1"),
        ({"min_samples": 1.5}, "min_samples must be an integer"),
        ({"on_timeout": "retry"}, "on_timeout must be one of rollback, promote, hold"),
        ({"strategy": "blue_green"}, "strategy must be one of canary, ab, shadow_first"),
        ({"strategy": "ab"}, "experiment_id is required"),
        (
            {"strategy": "ab", "experiment_id": "e", "experiment_percent": 100},
            r"experiment_percent must be in \(0, 100\)",
        ),
        (
            {"strategy": "ab", "experiment_id": "e", "experiment_stop": "whenever"},
            "experiment_stop must be one of fixed, sequential",
        ),
        (
            {"strategy": "ab", "experiment_id": "e", "experiment_duration_s": 10},
            "must not exceed experiment_duration_s",
        ),
        (
            {"strategy": "shadow_first", "shadow_percent": 0},
            r"shadow_percent must be in \(0, 100\]",
        ),
        (
            {"strategy": "shadow_first", "shadow_duration_s": 7_200, "max_wait_s": 3_600},
            "shadow_duration_s .* must not exceed max_wait_s",
        ),
        ({"sticky_key": " "}, "sticky_key must be a non-empty string"),
    ],
)
def test_invalid_specs_say_what_is_wrong(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutSpec(**{**BASE, **settings})


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"strategy": "shadow_first", "shadow_percent": 10, "on_timeout": "hold"},
        {"strategy": "ab", "experiment_id": "exp-9", "experiment_stop": "fixed"},
    ],
)
def test_json_round_trip(settings: dict[str, Any]) -> None:
    spec = RolloutSpec(**BASE, **settings)
    data = json.loads(json.dumps(spec.to_dict()))
    assert RolloutSpec.from_dict(data) == spec


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="unknown rollout settings: stepz"):
        RolloutSpec.from_dict({**BASE, "stepz": [5]})
    with pytest.raises(ValueError, match="missing rollout settings: candidate_version"):
        RolloutSpec.from_dict({"model": "m", "champion_version": "1"})
