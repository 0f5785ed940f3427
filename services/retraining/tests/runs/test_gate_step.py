"""The gate setting and the gate step on holdouts of each shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from orchard_retraining.gate import Task
from orchard_retraining.runs import gate_config, judge_candidate
from orchard_retraining.settings import RetrainingSettings

from .conftest import FakeRegistry


def test_the_default_gate_is_roc_auc_or_accuracy_with_a_one_point_margin() -> None:
    binary, multiclass = gate_config({}, Task.BINARY), gate_config({}, Task.MULTICLASS)
    assert [(r.metric, r.margin) for r in binary.metrics] == [("roc_auc", 0.01)]
    assert [(r.metric, r.margin) for r in multiclass.metrics] == [("accuracy", 0.01)]
    assert binary.confidence == 0.95


def test_a_configured_gate_is_taken_as_given() -> None:
    config = gate_config(
        {"metrics": [{"metric": "log_loss", "margin": 0.05}], "confidence": 0.9, "min_holdout": 20}
    )
    assert [(r.metric, r.margin) for r in config.metrics] == [("log_loss", 0.05)]
    assert (config.confidence, config.min_holdout) == (0.9, 20)


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ('{"metric": "auc"}', "unknown gate setting"),
        ('{"metrics": [{"metric": "auc"}]}', "unknown gate metric 'auc'"),
        ('{"metrics": "roc_auc"}', "must be a list"),
        ('{"confidence": 1.5}', "confidence must be in"),
        ('{"n_resamples": "many"}', "must be a number"),
        ('{"metrics": [{"metric": "f1", "weight": 2}]}', "unknown gate metric field"),
    ],
)
def test_a_bad_gate_setting_stops_the_service_with_a_message(
    gate: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHARD_RETRAINING_GATE", gate)
    with pytest.raises(ValidationError, match="gate") as caught:
        RetrainingSettings()
    assert message in str(caught.value)


def _holdout(registry: FakeRegistry, run_id: str, **arrays: np.ndarray) -> None:
    folder = registry.artifacts / run_id / "gate"
    folder.mkdir(parents=True)
    np.savez(folder / "holdout.npz", **arrays)  # type: ignore[arg-type]


def test_a_multiclass_holdout_is_judged_on_accuracy(tmp_path: Path) -> None:
    registry = FakeRegistry(tmp_path)
    registry.run_tags = lambda run_id: {}  # type: ignore[method-assign]  # untagged: by shape
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    champion = np.full((300, 3), 1 / 3)
    candidate = np.eye(3)[labels] * 0.8 + 0.2 / 3
    _holdout(registry, "r", labels=labels, champion=champion, candidate=candidate)
    judgment = judge_candidate(registry, "r", {}, {"rows": 300, "source": "holdout split"})
    assert judgment.verdict == "passed"
    assert judgment.details["task"] == "multiclass"
    assert judgment.details["metrics"][0]["metric"] == "accuracy"
    assert judgment.details["holdout"] == {"rows": 300, "source": "holdout split"}


def test_without_a_holdout_the_gate_is_inconclusive(tmp_path: Path) -> None:
    judgment = judge_candidate(FakeRegistry(tmp_path), "nothing", {})
    assert judgment.verdict == "inconclusive"
    assert "logged no gate/holdout.npz" in judgment.details["reason"]
    assert not judgment.promotes


def test_a_small_holdout_is_inconclusive_never_a_pass(tmp_path: Path) -> None:
    registry = FakeRegistry(tmp_path)
    labels = np.array([0, 1] * 10)
    scores = np.linspace(0.1, 0.9, 20)
    _holdout(registry, "r", labels=labels, champion=scores, candidate=scores)
    assert judge_candidate(registry, "r", {}).verdict == "inconclusive"
