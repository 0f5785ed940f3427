"""The quality gate as a pipeline step: the candidate against the champion on the holdout
the training step logged to its MLflow run (``gate/holdout.npz``: ``labels``, ``candidate``
and, when there was a champion, ``champion``).

Blocking (MLflow and the bootstrap); the runner calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from orchard_core.errors import NotFound
from orchard_retraining.gate import GateConfig, MetricRule, Task, Verdict, evaluate_gate

__all__ = [
    "HOLDOUT_ARTIFACT",
    "TASK_TAG",
    "VERDICT_TAG",
    "GateJudgment",
    "GateRegistry",
    "gate_config",
    "judge_candidate",
    "record_judgment",
]

HOLDOUT_ARTIFACT: Final = "gate/holdout.npz"
TASK_TAG: Final = "orchard.gate.task"
VERDICT_TAG: Final = "orchard.gate"
CHALLENGER: Final = "challenger"
DEFAULT_MARGIN: Final = 0.01
_DEFAULT_METRIC: Final = {Task.BINARY: "roc_auc", Task.MULTICLASS: "accuracy"}
_CONFIG_KEYS: Final = frozenset(
    {"metrics", "confidence", "n_resamples", "seed", "min_holdout", "threshold"}
)
_RULE_KEYS: Final = frozenset({"metric", "margin", "min_improvement", "direction"})
_VERDICTS: Final = {
    Verdict.PASS: "passed",
    Verdict.FAIL: "failed",
    Verdict.INCONCLUSIVE: "inconclusive",
}


class GateRegistry(Protocol):
    """What the gate step needs of the model registry (:class:`ModelRegistry` has it)."""

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path: ...

    def run_tags(self, run_id: str) -> dict[str, str]: ...

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None: ...

    def set_alias(self, model: str, alias: str, version: str) -> None: ...


def gate_config(data: Mapping[str, Any], task: Task | str = Task.BINARY) -> GateConfig:
    """The gate's config from the ``gate`` setting; without ``metrics``, the task's default
    (ROC AUC for binary, accuracy for multiclass, margin 0.01).

    Raises:
        ValueError: unknown keys, values of the wrong kind, or values the gate refuses.
    """
    unknown = set(data) - _CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"unknown gate setting(s): {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_CONFIG_KEYS))})"
        )
    rules_data = data.get("metrics")
    if rules_data is None:
        default = _DEFAULT_METRIC.get(Task(task))
        if default is None:
            raise ValueError(f"the gate has no default metric for a {task} task: set metrics")
        rules: tuple[MetricRule, ...] = (MetricRule(default, margin=DEFAULT_MARGIN),)
    else:
        if not isinstance(rules_data, list):
            raise ValueError("gate metrics must be a list of {metric, margin, min_improvement}")
        rules = tuple(_rule(item) for item in rules_data)
    options = {key: data[key] for key in _CONFIG_KEYS - {"metrics"} if key in data}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise ValueError(f"gate {key} must be a number, got {value!r}")
    try:
        return GateConfig(metrics=rules, **options)
    except TypeError as exc:
        raise ValueError(f"bad gate setting: {exc}") from None


def _rule(item: Any) -> MetricRule:
    if not isinstance(item, Mapping) or "metric" not in item:
        raise ValueError(f"each gate metric must be an object with 'metric', got {item!r}")
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise ValueError(f"unknown gate metric field(s): {', '.join(sorted(unknown))}")
    margin = item.get("margin", DEFAULT_MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, int | float):
        raise ValueError(f"gate metric margin must be a number, got {margin!r}")
    return MetricRule(
        metric=str(item["metric"]),
        margin=float(margin),
        min_improvement=item.get("min_improvement"),
        direction=item.get("direction"),
    )


@dataclass(frozen=True)
class GateJudgment:
    """The gate's verdict on a candidate (passed, failed, inconclusive, skipped) and the
    numbers it rests on, as recorded with the run."""

    verdict: str
    details: dict[str, Any]

    @property
    def promotes(self) -> bool:
        """Whether the candidate becomes the challenger."""
        return self.verdict in ("passed", "skipped")


def judge_candidate(
    registry: GateRegistry,
    mlflow_run_id: str,
    settings_gate: Mapping[str, Any],
    holdout: Mapping[str, Any] | None = None,
) -> GateJudgment:
    """Judge the candidate the MLflow run made, on the holdout it logged.

    Args:
        registry: where the run's artifact and tags are.
        mlflow_run_id: the training step's MLflow run.
        settings_gate: the ``gate`` setting.
        holdout: the step's report of its holdout (``rows``, ``source``), recorded as is.

    Raises:
        RegistryUnavailable: MLflow did not answer (judge again later).
    """
    about = {"holdout": dict(holdout or {})}
    with tempfile.TemporaryDirectory(prefix="orchard-gate-") as folder:
        try:
            path = registry.download_artifact(mlflow_run_id, HOLDOUT_ARTIFACT, Path(folder))
        except NotFound:
            reason = f"the training run logged no {HOLDOUT_ARTIFACT}: nothing to judge on"
            return GateJudgment("inconclusive", {"reason": reason})
        try:
            with np.load(path, allow_pickle=False) as arrays:
                loaded = {name: np.asarray(arrays[name]) for name in arrays.files}
        except (OSError, ValueError) as exc:
            reason = f"{HOLDOUT_ARTIFACT} is not a readable .npz file: {exc}"
            return GateJudgment("inconclusive", {"reason": reason})
    missing = {"labels", "candidate"} - set(loaded)
    if missing:
        reason = f"{HOLDOUT_ARTIFACT} lacks {', '.join(sorted(missing))}"
        return GateJudgment("inconclusive", {"reason": reason, **about})
    about["holdout"].setdefault("rows", int(loaded["labels"].shape[0]))
    if "champion" not in loaded:
        reason = "no champion to compare against: the first version passes"
        return GateJudgment("skipped", {"reason": reason, **about})
    task = _task(registry.run_tags(mlflow_run_id).get(TASK_TAG), loaded["candidate"])
    try:
        config = gate_config(settings_gate, task)
        result = evaluate_gate(
            task, loaded["labels"], loaded["champion"], loaded["candidate"], config
        )
    except ValueError as exc:
        reason = f"the gate could not judge this holdout: {exc}"
        return GateJudgment("inconclusive", {"reason": reason, **about})
    return GateJudgment(_VERDICTS[result.verdict], {**result.to_dict(), **about})


def _task(tagged: str | None, candidate: np.ndarray[Any, Any]) -> Task:
    if tagged in (Task.BINARY.value, Task.MULTICLASS.value, Task.REGRESSION.value):
        return Task(tagged)
    # Untagged: one score per row is a binary classifier's, a column per class multiclass.
    return Task.BINARY if candidate.ndim == 1 else Task.MULTICLASS


def record_judgment(
    registry: GateRegistry, model: str, version: str, judgment: GateJudgment
) -> None:
    """Tag the version with the verdict; a candidate that passed becomes the challenger.

    Raises:
        RegistryUnavailable: MLflow did not answer.
        NotFound: the version is gone.
    """
    registry.set_version_tag(model, version, VERDICT_TAG, judgment.verdict)
    if judgment.promotes:
        registry.set_alias(model, CHALLENGER, version)
