"""A/B experiments: each arm's primary metric against the control arm's.

The arms are the distinct ``route_arm`` values of the experiment's successful, non-shadow
predictions in the window. The primary metric is either

- ``accuracy``: correct / labeled predictions (the ``prediction`` output, else the argmax of
  ``predict_proba``, against the feedback ``label``), or
- ``value``: the mean business ``value`` from feedback, per request that has one — requests
  without feedback are left out, so send ``value: 0`` for a request that earned nothing.

Assignment is sticky per ``unit``, so one unit's requests are correlated; treating them as
independent would understate the variance and inflate false alarms. When some unit has
several observations the metric becomes a ratio over units (sum over the unit's requests /
their count) and its variance comes from the delta method (Deng, Knoblich & Lu 2018, "Applying
the delta method in metric analytics"), compared with ``compare_means``; when every unit has
one observation, accuracy is a plain proportion (``compare_proportions``) and value a plain
mean. Requests without a unit count as their own unit.

Each non-control arm is judged against control on the always-valid confidence sequence, so
the experiment may be looked at any number of times: PASS when the whole sequence is above 0
(significantly better), FAIL when below (significantly worse), INCONCLUSIVE otherwise and
whenever an arm has fewer than ``min_samples`` observations. With several treatment arms
``alpha`` is split over them (Bonferroni). The traffic split is checked for sample-ratio
mismatch (SRM) on units per arm against the configured weights (equal when none are given).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from orchard_core.errors import InvalidInput, NotFound
from orchard_evaluation.db import Database
from orchard_evaluation.rows import predicted_class, split_columns
from orchard_evaluation.stats import (
    DEFAULT_PLANNED_N,
    Direction,
    MeanSummary,
    ProportionSummary,
    Verdict,
    canary_verdict,
    srm_check,
)
from orchard_evaluation.tables import Event, Label

__all__ = ["ExperimentQuery", "analyze_experiment", "arm_summary"]

Metric = Literal["accuracy", "value", "auto"]
METRICS: Final = ("accuracy", "value", "auto")
PROBABILITIES: Final = "predict_proba"
PAGE: Final = 5_000
MAX_ROWS: Final = 2_000_000
CONTROL_NAME: Final = "control"
CHAMPION: Final = "champion"


@dataclass(frozen=True)
class ExperimentQuery:
    """Which experiment over which window, and the decision's settings."""

    experiment: str
    metric: Metric = "auto"
    control: str | None = None
    weights: Mapping[str, float] | None = None
    since: float | None = None
    until: float | None = None
    alpha: float = 0.05
    min_samples: int = 100
    planned_n: int = DEFAULT_PLANNED_N


@dataclass
class ArmOutcomes:
    """One arm's traffic: requests, versions, and per unit the metric's sum and count."""

    requests: int = 0
    rows: int = 0
    versions: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    labeled_rows: int = 0
    valued_requests: int = 0
    correct: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))
    value: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))


def arm_summary(
    sums: npt.ArrayLike, counts: npt.ArrayLike, *, proportion: bool, clustered: bool
) -> ProportionSummary | MeanSummary:
    """The summary one arm is compared on, from each unit's outcome sum and count.

    Unclustered (one observation per unit): the plain proportion or mean. Clustered: the
    ratio ``sum(sums) / sum(counts)`` as a ``MeanSummary`` over units whose variance is
    ``n_units * Var(ratio)`` from the delta method, so that ``variance / n`` is its squared
    standard error.
    """
    s = np.asarray(sums, dtype=np.float64)
    k = np.asarray(counts, dtype=np.float64)
    keep = k > 0
    s, k = s[keep], k[keep]
    if not clustered:
        if proportion:
            return ProportionSummary(round(float(s.sum())), int(s.size))
        return MeanSummary.from_values(s)
    n = int(s.size)
    if n < 2:
        return MeanSummary(n, float(s.sum() / k.sum()) if n else 0.0, 0.0)
    ratio = float(s.sum() / k.sum())
    covariance = np.cov(s, k, ddof=1)
    variance = (
        covariance[0, 0] - 2.0 * ratio * covariance[0, 1] + ratio * ratio * covariance[1, 1]
    ) / float(k.mean()) ** 2
    return MeanSummary(n, ratio, max(float(variance), 0.0))


def analyze_experiment(database: Database, query: ExperimentQuery) -> dict[str, Any]:
    """Per-arm metric, each arm against control, and the SRM check, as JSON-ready data.

    Raises:
        InvalidInput: an unknown metric or control arm, weights that do not cover the
            observed arms, or settings out of range.
        NotFound: no successful, non-shadow predictions of the experiment in the window.
    """
    if query.metric not in METRICS:
        raise InvalidInput(f"metric must be one of {', '.join(METRICS)}, got {query.metric!r}")
    if not 0.0 < query.alpha < 1.0:
        raise InvalidInput(f"alpha must be in (0, 1), got {query.alpha}")
    if query.min_samples < 2:
        raise InvalidInput(f"min_samples must be >= 2, got {query.min_samples}")
    arms = _gather(database, query)
    if not arms:
        raise NotFound(f"no predictions of experiment {query.experiment} in the window")
    names = sorted(arms)
    control, chosen_by = _control(query, arms)
    any_value = any(arm.valued_requests for arm in arms.values())
    metric = query.metric if query.metric != "auto" else ("value" if any_value else "accuracy")
    metric_source = (
        "asked for"
        if query.metric != "auto"
        else f"auto: {'feedback values' if any_value else 'no feedback values'} found"
    )
    per_unit = {
        name: arms[name].value if metric == "value" else arms[name].correct for name in names
    }
    clustered = any(c[1] > 1 for units in per_unit.values() for c in units.values())
    summaries = {
        name: arm_summary(
            [c[0] for c in per_unit[name].values()],
            [c[1] for c in per_unit[name].values()],
            proportion=metric == "accuracy",
            clustered=clustered,
        )
        for name in names
    }
    treatments = [name for name in names if name != control]
    alpha = query.alpha / max(len(treatments), 1)
    warnings: list[str] = []
    try:
        comparisons = [_compare(name, control, summaries, alpha, query) for name in treatments]
        srm = _srm(arms, query, warnings)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not treatments:
        warnings.append("only one arm has traffic: nothing to compare")
    return {
        "experiment": query.experiment,
        "models": sorted({m for arm in arms.values() for m in arm.models}),
        "window": {"since": query.since, "until": query.until},
        "metric": metric,
        "metric_source": metric_source,
        "control": {"arm": control, "chosen_by": chosen_by},
        "analysis": {
            "randomization_unit": "unit (request when missing)",
            "clustered": clustered,
            "method": (
                "ratio over units, delta-method variance"
                if clustered
                else "one observation per unit, treated as independent"
            ),
        },
        "arms": [_arm(n, arms[n], summaries[n], metric) for n in [control, *treatments]],
        "comparisons": comparisons,
        "correction": {
            "method": "bonferroni",
            "family_alpha": query.alpha,
            "per_comparison": alpha,
        },
        "srm": srm,
        "warnings": warnings,
    }


def _gather(database: Database, query: ExperimentQuery) -> dict[str, ArmOutcomes]:
    """Read the experiment's predictions page by page into per-arm outcomes."""
    arms: dict[str, ArmOutcomes] = defaultdict(ArmOutcomes)
    after, read = 0, 0
    while True:
        statement = (
            select(Event, Label.label, Label.value)
            .join(Label, Label.request_id == Event.request_id, isouter=True)
            .where(
                Event.experiment == query.experiment,
                Event.shadow.is_(False),
                Event.status < 400,
                Event.id > after,
            )
            .order_by(Event.id)
            .limit(PAGE)
        )
        if query.since is not None:
            statement = statement.where(Event.ts >= query.since)
        if query.until is not None:
            statement = statement.where(Event.ts < query.until)
        with database.session() as session:
            page = session.execute(statement).all()
        if not page:
            return dict(arms)
        read += len(page)
        if read > MAX_ROWS:
            raise InvalidInput(
                f"more than {MAX_ROWS} requests in the window: ask for a shorter one"
            )
        after = page[-1][0].id
        for event, truth, value in page:
            _add(arms[event.route_arm], event, truth, value)


def _add(arm: ArmOutcomes, event: Event, truth: Any, value: float | None) -> None:
    unit = event.unit if event.unit is not None else f"request:{event.request_id}"
    arm.requests += 1
    arm.rows += event.n_rows
    arm.versions.add(event.version)
    arm.models.add(event.model)
    arm.units.add(unit)
    if value is not None and math.isfinite(value):
        arm.valued_requests += 1
        arm.value[unit][0] += value
        arm.value[unit][1] += 1
    if truth is None:
        return
    outputs = split_columns(event.outputs, event.n_rows)
    if event.n_rows == 1:
        truths = [truth]
    elif isinstance(truth, list) and len(truth) == event.n_rows:
        truths = truth
    else:
        return
    for row, expected in zip(outputs, truths, strict=True):
        predicted = predicted_class(row)
        if expected is None or predicted is None:
            continue
        arm.labeled_rows += 1
        arm.correct[unit][0] += float(predicted == expected)
        arm.correct[unit][1] += 1


def _control(query: ExperimentQuery, arms: Mapping[str, ArmOutcomes]) -> tuple[str, str]:
    if query.control is not None:
        if query.control not in arms:
            raise InvalidInput(
                f"control arm {query.control!r} has no traffic; arms: {', '.join(sorted(arms))}"
            )
        return query.control, "the 'control' parameter"
    if CONTROL_NAME in arms:
        return CONTROL_NAME, "the arm named 'control'"
    if CHAMPION in arms:
        return CHAMPION, "the champion's arm"
    return sorted(arms)[0], "the first arm in sorted order (no control or champion arm)"


def _compare(
    name: str,
    control: str,
    summaries: Mapping[str, ProportionSummary | MeanSummary],
    alpha: float,
    query: ExperimentQuery,
) -> dict[str, Any]:
    decided = canary_verdict(
        f"{name} vs {control}",
        summaries[control],
        summaries[name],
        direction=Direction.HIGHER_IS_BETTER,
        margin=0.0,
        min_samples=query.min_samples,
        alpha=alpha,
        planned_n=query.planned_n,
    )
    if decided.comparison is None:
        reason = (
            f"too few observations ({control} {decided.baseline_n}, {name}"
            f" {decided.candidate_n}; need {query.min_samples} each)"
        )
    elif decided.verdict is Verdict.PASS:
        reason = f"{name} is better than {control}: the confidence sequence lies above 0"
    elif decided.verdict is Verdict.FAIL:
        reason = f"{name} is worse than {control}: the confidence sequence lies below 0"
    else:
        reason = "no significant difference yet: the confidence sequence contains 0"
    comparison = decided.comparison.to_dict() if decided.comparison else None
    return {
        "arm": name,
        "control": control,
        "verdict": decided.verdict.value,
        "reason": reason,
        "threshold": 0.0,
        "alpha": alpha,
        "min_samples": query.min_samples,
        "sample_sizes": {"control": decided.baseline_n, "arm": decided.candidate_n},
        "difference": comparison["difference"] if comparison else None,
        "relative_difference": comparison["relative_difference"] if comparison else None,
        "fixed_horizon": comparison["fixed_horizon"] if comparison else None,
        "always_valid": comparison["always_valid"] if comparison else None,
        "method": comparison["method"] if comparison else None,
    }


def _srm(
    arms: Mapping[str, ArmOutcomes], query: ExperimentQuery, warnings: list[str]
) -> dict[str, Any]:
    observed = {name: len(arm.units) for name, arm in arms.items()}
    if query.weights is None:
        weights: Mapping[str, float] = {name: 1.0 for name in arms}
        source = "default: equal weights over the observed arms (pass weights to check the split)"
    else:
        weights, source = query.weights, "weights parameter"
    result = srm_check(observed, weights, min_total=query.min_samples).to_dict()
    seen: dict[str, int] = defaultdict(int)
    for arm in arms.values():
        for unit in arm.units:
            seen[unit] += 1
    crossed = sum(1 for count in seen.values() if count > 1)
    if result["mismatch"]:
        warnings.append("sample-ratio mismatch: the arms' results may be biased; find the cause")
    if crossed:
        warnings.append(f"{crossed} units were served by more than one arm")
    return {
        **result,
        "counted": "units",
        "weights_source": source,
        "units_in_several_arms": crossed,
    }


def _arm(
    name: str, arm: ArmOutcomes, summary: ProportionSummary | MeanSummary, metric: str
) -> dict[str, Any]:
    # Clustered, ``variance`` is per unit (n_units * Var(ratio)); std_error is the estimate's.
    if isinstance(summary, ProportionSummary):
        estimate, n, variance = summary.rate, summary.n, None
        std_error = math.sqrt(estimate * (1 - estimate) / n) if estimate is not None else None
    else:
        estimate = summary.mean if summary.n else None
        n, variance = summary.n, summary.variance
        std_error = math.sqrt(variance / n) if n else None
    observed = arm.labeled_rows if metric == "accuracy" else arm.valued_requests
    total = arm.rows if metric == "accuracy" else arm.requests
    return {
        "arm": name,
        "versions": sorted(arm.versions),
        "requests": arm.requests,
        "rows": arm.rows,
        "units": len(arm.units),
        "observations": observed,
        "coverage": observed / total if total else None,
        "metric": metric,
        "estimate": estimate,
        "variance": variance,
        "std_error": std_error,
        "n": n,
    }
