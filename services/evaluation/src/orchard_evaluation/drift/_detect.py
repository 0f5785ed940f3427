"""Choosing a method per column, as Evidently does, and judging each column and the data set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from orchard_core.profiles import CategoricalProfile
from orchard_evaluation.drift import _methods
from orchard_evaluation.drift._summaries import ColumnSummary, NumericView, numeric_view
from orchard_evaluation.drift._types import (
    DEFAULT_THRESHOLDS,
    METHOD_KINDS,
    P_VALUE_METHODS,
    ColumnDrift,
    DatasetDrift,
    DriftMethod,
    DriftOptions,
)

# Evidently's cut-offs (stattests.registry._get_default_stattest).
SMALL_REFERENCE_ROWS: Final = 1000
FEW_VALUES: Final = 5
TWO_VALUES: Final = 2


def default_method(kind: str, reference_count: int, n_unique: int | None) -> DriftMethod:
    """Evidently 0.7's default test for a column.

    Args:
        kind: ``"numeric"`` or ``"categorical"``.
        reference_count: Non-missing reference values.
        n_unique: Distinct non-missing values over both sides together; None when many.
    """
    few = n_unique is not None and n_unique <= FEW_VALUES
    binary = n_unique is not None and n_unique <= TWO_VALUES
    if reference_count <= SMALL_REFERENCE_ROWS:
        if kind == "categorical" or few:
            return "z" if binary else "chisquare"
        return "ks"
    if kind == "categorical" or few:
        return "jensenshannon"
    return "wasserstein"


def detect_drift(
    reference: Mapping[str, ColumnSummary],
    current: Mapping[str, ColumnSummary],
    *,
    options: DriftOptions | None = None,
) -> DatasetDrift:
    """Judge drift of every reference column from profiles, with Evidently's defaults.

    Works for a reference profile against a window and for a window against a window (e.g. a
    canary's outputs against the baseline's); pass ``profile.features`` for data drift and
    ``profile.outputs`` for prediction drift. Columns only in ``current`` are ignored; a
    reference column absent from ``current`` gets no verdict.

    Raises:
        ValueError: A column is numeric on one side and categorical on the other, or a method
            override does not apply to the column's kind.
    """
    options = options or DriftOptions()
    columns = tuple(
        column_drift(name, summary, current.get(name), options)
        for name, summary in reference.items()
    )
    return DatasetDrift(columns=columns, share_threshold=options.share_threshold)


def column_drift(
    name: str,
    reference: ColumnSummary,
    current: ColumnSummary | None,
    options: DriftOptions,
) -> ColumnDrift:
    """Judge one column (see :func:`detect_drift`)."""
    kind = reference.kind
    if current is not None and current.kind != kind:
        raise ValueError(f"column {name!r} is {kind} in the reference, {current.kind} in current")
    ref_count = reference.count
    cur_count = 0 if current is None else current.count
    reason = _lacking(ref_count, cur_count, options, current is None)
    override = options.method_for(name)
    if override is not None and kind not in METHOD_KINDS[override]:
        raise ValueError(f"drift method {override!r} does not apply to {kind} column {name!r}")
    if reason is not None or current is None:
        return ColumnDrift(name, kind, None, None, None, None, ref_count, cur_count, reason=reason)
    if isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile):
        ref_counts = {k: float(v) for k, v in reference.value_counts.items()}
        cur_counts = {k: float(v) for k, v in current.value_counts.items()}
        n_unique: int | None = len(ref_counts.keys() | cur_counts.keys())
        method: DriftMethod = override or default_method(kind, ref_count, n_unique)
        score = _categorical_score(method, ref_counts, cur_counts)
    elif not isinstance(reference, CategoricalProfile) and not isinstance(
        current, CategoricalProfile
    ):
        ref_view, cur_view = numeric_view(reference), numeric_view(current)
        n_unique = _union_unique(ref_view, cur_view)
        method = override or default_method(kind, ref_count, n_unique)
        score = _numeric_score(method, ref_view, cur_view)
    else:  # pragma: no cover - kinds were checked above
        raise AssertionError(kind)
    threshold = options.thresholds.get(name, DEFAULT_THRESHOLDS[method])
    return ColumnDrift(
        column=name,
        kind=kind,
        method=method,
        score=score,
        threshold=threshold,
        drifted=_drifted(method, score, threshold),
        reference_count=ref_count,
        current_count=cur_count,
        p_value=score if method in P_VALUE_METHODS else None,
    )


def _drifted(method: DriftMethod, score: float, threshold: float) -> bool:
    # Evidently: KS drifts at p <= threshold, chi-square and Z at p < threshold, distances at
    # score >= threshold.
    if method == "ks":
        return score <= threshold
    if method in P_VALUE_METHODS:
        return score < threshold
    return score >= threshold


def _lacking(ref_count: int, cur_count: int, options: DriftOptions, absent: bool) -> str | None:
    if absent:
        return "column absent from current data"
    if ref_count < options.min_reference_rows:
        return (
            f"reference has {ref_count} non-missing values, fewer than "
            f"min_reference_rows={options.min_reference_rows}"
        )
    if cur_count < options.min_rows:
        return f"current has {cur_count} non-missing values, fewer than min_rows={options.min_rows}"
    return None


def _union_unique(reference: NumericView, current: NumericView) -> int | None:
    if reference.distinct is None or current.distinct is None:
        return None
    return len(reference.distinct.keys() | current.distinct.keys())


def _categorical_score(
    method: DriftMethod, reference: dict[str, float], current: dict[str, float]
) -> float:
    if method == "chisquare":
        return _methods.chisquare_p_value(reference, current)
    if method == "z":
        return _methods.z_p_value(reference, current)
    ref_shares, cur_shares = _methods.shares_of_counts(reference, current)
    if method == "psi":
        return _methods.psi(ref_shares, cur_shares)
    return _methods.jensenshannon(ref_shares, cur_shares)


def _numeric_score(method: DriftMethod, reference: NumericView, current: NumericView) -> float:
    if method == "wasserstein":
        return _methods.wasserstein_norm(reference, current)
    if method == "ks":
        statistic = _methods.ks_statistic(reference, current)
        return _methods.ks_p_value(statistic, reference.count, current.count)
    if method == "chisquare":
        return _methods.chisquare_p_value(reference.value_counts(), current.value_counts())
    if method == "z":
        return _methods.z_p_value(reference.value_counts(), current.value_counts())
    ref_shares, cur_shares = _methods.numeric_shares(reference, current)
    if method == "psi":
        return _methods.psi(ref_shares, cur_shares)
    return _methods.jensenshannon(ref_shares, cur_shares)
