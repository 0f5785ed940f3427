"""The gate's vocabulary: tasks, directions, verdicts, metrics, config and results."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class Task(StrEnum):
    """What the models predict, and so how their scores are read."""

    BINARY = "binary"  # scores: the positive class's probability, shape (n,)
    MULTICLASS = "multiclass"  # scores: class probabilities, shape (n, k)
    REGRESSION = "regression"  # scores: predictions, shape (n,)


class Direction(StrEnum):
    """Which way is better for a metric."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class Verdict(StrEnum):
    """The outcome of an automated decision."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True, slots=True)
class _MetricSpec:
    direction: Direction
    tasks: frozenset[Task]


_CLASSIFICATION: Final = frozenset({Task.BINARY, Task.MULTICLASS})
METRICS: Final[Mapping[str, _MetricSpec]] = {
    "accuracy": _MetricSpec(Direction.HIGHER_IS_BETTER, _CLASSIFICATION),
    "roc_auc": _MetricSpec(Direction.HIGHER_IS_BETTER, frozenset({Task.BINARY})),
    "log_loss": _MetricSpec(Direction.LOWER_IS_BETTER, _CLASSIFICATION),
    "f1": _MetricSpec(Direction.HIGHER_IS_BETTER, _CLASSIFICATION),
    "mae": _MetricSpec(Direction.LOWER_IS_BETTER, frozenset({Task.REGRESSION})),
    "rmse": _MetricSpec(Direction.LOWER_IS_BETTER, frozenset({Task.REGRESSION})),
}
"""The metrics the gate can judge, their natural direction and the tasks they apply to.

``accuracy`` and ``f1`` use the class decision (binary: probability >= ``threshold``;
multiclass: the most probable class); ``f1`` is the positive class's F1 (binary) or the macro
average over all ``k`` classes, 0 where a class has no true or predicted rows (multiclass).
``log_loss`` clips probabilities to ``[eps, 1 - eps]`` as scikit-learn does.
"""


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class MetricRule:
    """How one metric is judged.

    Attributes:
        metric: one of ``METRICS``.
        margin: how much worse than the champion the candidate may be, in the metric's units
            (``0.01`` = one point of accuracy); ``0`` asks for "not worse".
        min_improvement: when set, the gain over the champion the candidate must show (the
            interval's worse bound must reach it); ``None`` judges non-inferiority only.
        direction: which way is better; ``None`` takes the metric's natural direction.
    """

    metric: str
    margin: float = 0.0
    min_improvement: float | None = None
    direction: Direction | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise ValueError(f"unknown gate metric {self.metric!r}; known metrics: {known}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"{self.metric}: margin must be finite and >= 0, got {self.margin}")
        if self.min_improvement is not None and not (
            math.isfinite(self.min_improvement) and self.min_improvement >= 0
        ):
            raise ValueError(
                f"{self.metric}: min_improvement must be finite and >= 0 (or None), "
                f"got {self.min_improvement}"
            )
        if self.direction is not None:
            object.__setattr__(self, "direction", Direction(self.direction))

    @property
    def resolved_direction(self) -> Direction:
        """The direction in force: the one given, else the metric's natural one."""
        return self.direction or METRICS[self.metric].direction

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return {
            "metric": self.metric,
            "direction": self.resolved_direction.value,
            "margin": self.margin,
            "min_improvement": self.min_improvement,
        }


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The gate's settings.

    Attributes:
        metrics: the judged metrics, each with its margin; every one must PASS.
        confidence: the bootstrap interval's level.
        n_resamples: bootstrap resamples.
        seed: the resampling seed; fixed by default so that rerunning the gate on the same
            holdout gives the same decision. ``None`` draws fresh entropy.
        min_holdout: fewer holdout rows than this gives INCONCLUSIVE.
        threshold: the positive-class probability from which a binary score counts as a
            positive prediction (accuracy, F1).
    """

    metrics: tuple[MetricRule, ...]
    confidence: float = 0.95
    n_resamples: int = 2000
    seed: int | None = 0
    min_holdout: int = 100
    threshold: float = 0.5

    def __post_init__(self) -> None:
        rules = tuple(self.metrics)
        object.__setattr__(self, "metrics", rules)
        if not rules:
            raise ValueError("the gate needs at least one metric to judge")
        names = [rule.metric for rule in rules]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"metrics judged twice: {', '.join(duplicated)}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples must be at least 100, got {self.n_resamples}")
        if self.min_holdout < 1:
            raise ValueError(f"min_holdout must be at least 1, got {self.min_holdout}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (the config echoed in every result)."""
        return {
            "metrics": [rule.to_dict() for rule in self.metrics],
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "min_holdout": self.min_holdout,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's verdict with the numbers it rests on.

    ``difference`` and ``ci`` are ``candidate - champion`` in the metric's units (not oriented:
    for a lower-is-better metric a negative difference is a gain). ``threshold`` is the
    difference past which the candidate counts as worse than tolerated.
    """

    metric: str
    direction: Direction
    verdict: Verdict
    reason: str
    champion: float | None
    candidate: float | None
    difference: float | None
    ci: tuple[float, float] | None
    margin: float
    min_improvement: float | None
    resamples_used: int

    @property
    def threshold(self) -> float:
        """``-margin`` (higher is better) or ``+margin`` (lower is better)."""
        return -self.margin if self.direction is Direction.HIGHER_IS_BETTER else self.margin

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data: no NaN or infinity, missing values are None."""
        return {
            "metric": self.metric,
            "direction": self.direction.value,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "champion": _finite(self.champion),
            "candidate": _finite(self.candidate),
            "difference": _finite(self.difference),
            "ci": [_finite(self.ci[0]), _finite(self.ci[1])] if self.ci else None,
            "margin": self.margin,
            "min_improvement": self.min_improvement,
            "threshold": self.threshold,
            "resamples_used": self.resamples_used,
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's decision: ``passed`` only when every judged metric is PASS."""

    task: Task
    n: int
    metrics: tuple[MetricResult, ...]
    config: GateConfig
    verdict: Verdict = field(init=False)
    summary: str = field(init=False)

    def __post_init__(self) -> None:
        verdicts = [result.verdict for result in self.metrics]
        if Verdict.FAIL in verdicts:
            overall = Verdict.FAIL
        elif verdicts and all(v is Verdict.PASS for v in verdicts):
            overall = Verdict.PASS
        else:
            overall = Verdict.INCONCLUSIVE
        object.__setattr__(self, "verdict", overall)
        object.__setattr__(self, "summary", _summary(overall, self.metrics, self.config))

    @property
    def passed(self) -> bool:
        """Whether the candidate may become the challenger."""
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data, ready to be recorded with the candidate."""
        return {
            "passed": self.passed,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "task": self.task.value,
            "n": self.n,
            "metrics": [result.to_dict() for result in self.metrics],
            "config": self.config.to_dict(),
        }


def _summary(overall: Verdict, results: Sequence[MetricResult], config: GateConfig) -> str:
    def describe(result: MetricResult) -> str:
        if result.difference is None or result.ci is None:
            return f"{result.metric}: {result.reason}"
        level = f"{config.confidence:.0%}"
        return (
            f"{result.metric} {result.candidate:.4g} vs {result.champion:.4g} "
            f"(difference {result.difference:+.4g}, {level} CI "
            f"[{result.ci[0]:+.4g}, {result.ci[1]:+.4g}], margin {result.margin:g})"
        )

    if overall is Verdict.PASS:
        return "PASS: the candidate passes every metric: " + "; ".join(map(describe, results))
    failing = [r for r in results if r.verdict is overall]
    label = "worse than the champion beyond the margin" if overall is Verdict.FAIL else "undecided"
    return f"{overall.value}: {label} on " + "; ".join(map(describe, failing))
