"""Canary analysis: a candidate version against the concurrently serving baseline.

Gated signals (each at ``alpha / k`` for ``k`` gated signals, Bonferroni), each decided with
an always-valid test so that retraining may ask at every step interval:

- ``error_rate``: the share of requests answered 5xx (4xx are the caller's fault and left
  out), lower is better, non-inferiority within ``error_margin``;
- ``latency``: the share of requests slower than a threshold frozen *before* the window —
  ``latency_threshold_ms``, else the baseline's p99 over ``lookback_s`` before ``since``
  (a threshold re-estimated from the judged window would make the test invalid) — lower is
  better, within ``latency_margin``;
- ``accuracy``: realized, from labeled predictions, higher is better, within
  ``accuracy_margin`` (left out until there are labels);
- ``traffic_split``: sample-ratio mismatch against ``candidate_weight`` when it is given.

Reported beside them, not gated: p50 and p99 latency per arm with bootstrap intervals, the
output distribution (the candidate's window profiles judged against the baseline's with the
drift tests), and the label-free (CBPE) accuracy estimate per arm. The overall verdict: any
FAIL fails, all PASS passes, otherwise (or with no signal at all) INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from orchard_core.errors import InvalidInput, NotFound
from orchard_evaluation.db import Database
from orchard_evaluation.drift import DriftOptions, detect_drift
from orchard_evaluation.quality import estimate_classification_quality
from orchard_evaluation.rows import RowQuery, iter_rows, predicted_class
from orchard_evaluation.stats import (
    Direction,
    ProportionSummary,
    Verdict,
    canary_verdict,
    compare_quantiles,
    exceedance_summary,
    srm_check,
)
from orchard_evaluation.tables import Event
from orchard_evaluation.windows import WindowStore

__all__ = ["CompareQuery", "compare_versions"]

PROBABILITIES: Final = "predict_proba"
MAX_ROWS: Final = 2_000_000


@dataclass(frozen=True)
class CompareQuery:
    """Which versions to compare over which window, and the decision's settings."""

    model: str
    baseline: str
    candidate: str
    since: float
    until: float | None = None
    candidate_weight: float | None = None
    candidate_shadow: bool = False
    error_margin: float = 0.01
    latency_margin: float = 0.01
    latency_threshold_ms: float | None = None
    accuracy_margin: float = 0.02
    min_samples: int = 100
    alpha: float = 0.05
    lookback_s: float = 3_600.0


def compare_versions(
    database: Database, query: CompareQuery, windows: WindowStore | None = None
) -> dict[str, Any]:
    """The canary analysis (see the module docs) as JSON-ready data.

    Raises:
        InvalidInput: the same version twice, or settings out of range.
        NotFound: neither version served the model in the window.
    """
    if query.baseline == query.candidate:
        raise InvalidInput("baseline and candidate must be different versions")
    base = _requests(database, query, query.baseline, shadow=False)
    cand = _requests(database, query, query.candidate, shadow=query.candidate_shadow)
    if base.size == 0 and cand.size == 0:
        raise NotFound(
            f"no predictions of {query.model} versions {query.baseline} or {query.candidate}"
            " in the window"
        )
    threshold, threshold_source = _latency_threshold(database, query)
    base_labels = _labeled(database, query, query.baseline, False)
    cand_labels = _labeled(database, query, query.candidate, query.candidate_shadow)
    labeled = len(base_labels[0]) > 0 and len(cand_labels[0]) > 0
    # The traffic split has its own strict alpha (srm_check's default): not in the family.
    alpha = query.alpha / (1 + (threshold is not None) + labeled)
    settings: dict[str, Any] = {"min_samples": query.min_samples, "alpha": alpha}
    signals: list[dict[str, Any]] = []
    try:
        signals.append(
            canary_verdict(
                "error_rate",
                _errors(base),
                _errors(cand),
                direction=Direction.LOWER_IS_BETTER,
                margin=query.error_margin,
                **settings,
            ).to_dict()
        )
        if threshold is not None:
            latency = canary_verdict(
                "latency",
                exceedance_summary(_latencies(base), threshold),
                exceedance_summary(_latencies(cand), threshold),
                direction=Direction.LOWER_IS_BETTER,
                margin=query.latency_margin,
                **settings,
            ).to_dict()
            latency["latency_threshold_ms"] = threshold
            latency["threshold_source"] = threshold_source
            signals.append(latency)
        if labeled:
            signals.append(
                canary_verdict(
                    "accuracy",
                    ProportionSummary(int(base_labels[0].sum()), len(base_labels[0])),
                    ProportionSummary(int(cand_labels[0].sum()), len(cand_labels[0])),
                    direction=Direction.HIGHER_IS_BETTER,
                    margin=query.accuracy_margin,
                    **settings,
                ).to_dict()
            )
        if query.candidate_weight is not None:
            split = srm_check(
                {"baseline": int(base.shape[0]), "candidate": int(cand.shape[0])},
                {"baseline": 1.0 - query.candidate_weight, "candidate": query.candidate_weight},
                min_total=query.min_samples,
            ).to_dict()
            signals.append({"metric": "traffic_split", **split})
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    verdicts = {s["verdict"] for s in signals}
    if Verdict.FAIL.value in verdicts:
        overall = Verdict.FAIL
    elif verdicts == {Verdict.PASS.value}:
        overall = Verdict.PASS
    else:
        overall = Verdict.INCONCLUSIVE
    return {
        "model": query.model,
        "baseline": query.baseline,
        "candidate": query.candidate,
        "window": {"since": query.since, "until": query.until},
        "verdict": overall.value,
        "correction": {"method": "bonferroni", "family_alpha": query.alpha, "per_signal": alpha},
        "signals": signals,
        "latency_quantiles": _quantiles(base, cand),
        "output_distribution": _output_distribution(windows, query),
        "estimated_accuracy": {
            "baseline": _estimated_accuracy(base_labels[1]),
            "candidate": _estimated_accuracy(cand_labels[1]),
        },
        "sample_sizes": {"baseline": int(base.shape[0]), "candidate": int(cand.shape[0])},
    }


def _requests(
    database: Database, query: CompareQuery, version: str, *, shadow: bool
) -> npt.NDArray[np.float64]:
    """``[status, latency_ms]`` per request of one arm in the window."""
    statement = select(Event.status, Event.latency_ms).where(
        Event.model == query.model,
        Event.version == version,
        Event.shadow.is_(shadow),
        Event.ts >= query.since,
    )
    if query.until is not None:
        statement = statement.where(Event.ts < query.until)
    with database.session() as session:
        rows = session.execute(statement.limit(MAX_ROWS + 1)).all()
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"more than {MAX_ROWS} requests in the window: ask for a shorter one")
    return np.array(
        [(r.status, np.nan if r.latency_ms is None else r.latency_ms) for r in rows],
        dtype=np.float64,
    ).reshape(-1, 2)


def _errors(requests: npt.NDArray[np.float64]) -> ProportionSummary:
    status = requests[:, 0]
    counted = (status < 400) | (status >= 500)
    return ProportionSummary(int((status >= 500).sum()), int(counted.sum()))


def _latencies(requests: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    values: npt.NDArray[np.float64] = requests[requests[:, 0] < 400, 1]
    return values[np.isfinite(values)]


def _latency_threshold(database: Database, query: CompareQuery) -> tuple[float | None, str]:
    if query.latency_threshold_ms is not None:
        return query.latency_threshold_ms, "latency_threshold_ms"
    before = CompareQuery(
        query.model,
        query.baseline,
        query.candidate,
        since=query.since - query.lookback_s,
        until=query.since,
    )
    history = _latencies(_requests(database, before, query.baseline, shadow=False))
    if history.size < query.min_samples:
        return None, (
            f"no frozen threshold: the baseline answered {history.size} requests in the "
            f"{query.lookback_s:g} s before 'since' (need {query.min_samples}); "
            "pass latency_threshold_ms"
        )
    return float(np.quantile(history, 0.99)), f"baseline p99 over the {query.lookback_s:g} s before"


def _labeled(
    database: Database, query: CompareQuery, version: str, shadow: bool
) -> tuple[npt.NDArray[np.bool_], list[Any]]:
    """Whether each labeled prediction of one arm was right, and every row's probabilities."""
    spec = RowQuery(query.model, version, query.since, query.until, include_shadow=shadow)
    correct: list[bool] = []
    probabilities: list[Any] = []
    for page in iter_rows(database, spec):
        for row in page:
            if row["version"] != version:
                continue
            proba = row["outputs"].get(PROBABILITIES)
            if isinstance(proba, list):
                probabilities.append(proba)
            predicted = predicted_class(row["outputs"])
            if row["label"] is not None and predicted is not None:
                correct.append(predicted == row["label"])
    return np.array(correct, dtype=bool), probabilities


def _quantiles(
    base: npt.NDArray[np.float64], cand: npt.NDArray[np.float64]
) -> list[dict[str, Any]] | None:
    a, b = _latencies(base), _latencies(cand)
    if a.size == 0 or b.size == 0:
        return None
    return [q.to_dict() for q in compare_quantiles(a, b, quantiles=(0.5, 0.99))]


def _output_distribution(windows: WindowStore | None, query: CompareQuery) -> dict[str, Any]:
    """The candidate's outputs against the baseline's over the window, from window profiles
    (the tests of :mod:`drift`, the baseline as reference). Reported, not gated: a retrained
    candidate is expected to answer somewhat differently."""
    if windows is None:
        return {"verdict": Verdict.INCONCLUSIVE.value, "reason": "window profiles not available"}
    base = windows.merge_range(query.model, query.baseline, query.since, query.until)
    cand = windows.merge_range(query.model, query.candidate, query.since, query.until)
    if base is None or cand is None:
        return {
            "verdict": Verdict.INCONCLUSIVE.value,
            "reason": "no window profiles of one of the versions in the window yet",
        }
    drift = detect_drift(
        base.outputs, cand.outputs, options=DriftOptions(min_rows=query.min_samples)
    )
    if drift.dataset_drifted is None:
        verdict, reason = Verdict.INCONCLUSIVE, "not enough data for a verdict"
    elif drift.dataset_drifted:
        verdict, reason = Verdict.FAIL, "the candidate's outputs are distributed differently"
    else:
        verdict, reason = Verdict.PASS, "the outputs are distributed alike"
    return {"verdict": verdict.value, "reason": reason, "gated": False, **drift.to_dict()}


def _estimated_accuracy(probabilities: list[Any]) -> dict[str, Any] | None:
    if not probabilities:
        return None
    try:
        estimate = estimate_classification_quality(np.array(probabilities, dtype=np.float64))
    except ValueError:
        return None
    return {"n": len(probabilities), **estimate.to_dict()["metrics"]["accuracy"]}
