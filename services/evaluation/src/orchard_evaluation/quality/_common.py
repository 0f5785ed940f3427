"""Shared input parsing and result types for the quality package."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Task = Literal["binary", "multiclass"]
ONE_CLASS = "labels contain a single class"

# Rows of a probability matrix may be off by float32 rounding; anything further is a bug upstream.
_ROW_SUM_TOLERANCE = 1e-3


def finite_or_none(value: float) -> float | None:
    """Returns ``value`` as a plain float, or None when it is NaN or infinite (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricValue:
    """One metric: its value, or None and the reason it is undefined on the data."""

    value: float | None
    reason: str | None = None

    @classmethod
    def of(cls, value: float, reason_if_undefined: str) -> MetricValue:
        """Wraps ``value``, turning NaN or infinity into None with ``reason_if_undefined``."""
        clean = finite_or_none(value)
        return cls(clean, None if clean is not None else reason_if_undefined)

    def to_dict(self) -> dict[str, float | str | None]:
        """JSON-safe form: ``{"value": ..., "reason": ...}``."""
        return {"value": self.value, "reason": self.reason}


def undefined(reason: str) -> MetricValue:
    """A metric that cannot be computed on the data."""
    return MetricValue(None, reason)


def parse_scores(scores: npt.ArrayLike) -> tuple[FloatArray, Task]:
    """Validates classifier outputs.

    Args:
        scores: shape ``(n,)`` probabilities of the positive class, or ``(n, k)`` class
            probabilities. ``(n, 2)`` is read as binary with column 1 the positive class.

    Returns:
        ``(n,)`` positive-class probabilities for a binary task, or ``(n, k)`` rows renormalised
        to sum to one for a multi-class task; and the task.

    Raises:
        ValueError: wrong shape, non-finite values, values outside [0, 1], or rows that do not
            sum to one.
    """
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim not in (1, 2):
        raise ValueError(f"scores must have shape (n,) or (n, k); got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("scores contain NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError("scores must be probabilities in [0, 1]")
    if array.ndim == 1:
        return array, "binary"
    row_sums = array.sum(axis=1)
    if array.shape[0] and np.max(np.abs(row_sums - 1.0)) > _ROW_SUM_TOLERANCE:
        raise ValueError("each row of class probabilities must sum to 1")
    if array.shape[1] == 2:
        return array[:, 1], "binary"
    return array / row_sums[:, None], "multiclass"


def parse_labels(labels: npt.ArrayLike, n_rows: int) -> tuple[FloatArray, BoolArray]:
    """Reads labels aligned with predictions, where NaN or None marks an unlabeled row.

    Returns:
        The labels as floats and the mask of labeled rows.
    """
    array = np.asarray(labels, dtype=np.float64).reshape(-1)
    if array.shape[0] != n_rows:
        raise ValueError(f"labels has {array.shape[0]} rows but there are {n_rows} predictions")
    if np.any(np.isinf(array)):
        raise ValueError("labels contain infinite values")
    return array, ~np.isnan(array)


def parse_class_labels(values: FloatArray, n_classes: int) -> IntArray:
    """Checks that labeled values are class indices ``0 .. n_classes - 1``."""
    if values.size and (
        np.any(values != np.round(values)) or values.min() < 0 or values.max() >= n_classes
    ):
        raise ValueError(f"class labels must be integers in [0, {n_classes - 1}]")
    return values.astype(np.int64)


def parse_timestamps(values: npt.ArrayLike | None, n_rows: int, name: str) -> FloatArray | None:
    """Reads optional timestamps (seconds since the epoch; NaN or None for unknown)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != n_rows:
        raise ValueError(f"{name} has {array.shape[0]} rows but there are {n_rows} predictions")
    return array


def positive_class_ranks(scores: FloatArray) -> FloatArray:
    """Ranks of ``scores`` (1-based, ties averaged), for AUC as a Mann-Whitney statistic."""
    return np.asarray(rankdata(scores), dtype=np.float64)


def roc_auc(scores: FloatArray, positives: BoolArray) -> MetricValue:
    """ROC AUC as the Mann-Whitney statistic (ties count one half, as in sklearn)."""
    n_pos = int(positives.sum())
    n_neg = int(positives.shape[0]) - n_pos
    if n_pos == 0 or n_neg == 0:
        return undefined(ONE_CLASS)
    rank_sum = float(positive_class_ranks(scores)[positives].sum())
    return MetricValue.of((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), ONE_CLASS)


def macro_scores(confusion: FloatArray) -> tuple[float, float, float]:
    """Macro precision, recall and F1 from a (true x predicted) confusion matrix.

    Like sklearn's defaults, the average runs over the classes that occur among the labels or
    the predictions, and a class with an empty denominator scores 0 rather than poisoning the
    mean.
    """
    true_counts = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    hits = np.diag(confusion)
    seen = (true_counts > 0) | (predicted_counts > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_counts > 0, hits / predicted_counts, 0.0)
        recall = np.where(true_counts > 0, hits / true_counts, 0.0)
        denominator = true_counts + predicted_counts
        f1 = np.where(denominator > 0, 2 * hits / denominator, 0.0)
    return (
        float(precision[seen].mean()),
        float(recall[seen].mean()),
        float(f1[seen].mean()),
    )
