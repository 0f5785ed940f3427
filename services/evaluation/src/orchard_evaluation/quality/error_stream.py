"""The error stream that concept drift detectors read: labeled predictions' errors, in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchard_evaluation.quality._common import (
    BoolArray,
    FloatArray,
    parse_class_labels,
    parse_labels,
    parse_scores,
    parse_timestamps,
)


# eq=False: fields are arrays, whose == is elementwise, not a verdict.
@dataclass(frozen=True, eq=False)
class ErrorStream:
    """Errors of labeled predictions in prediction-time order.

    Attributes:
        errors: 0/1 misclassifications, or absolute errors for a regressor.
        timestamps: prediction times, seconds since the epoch; None when unknown.
    """

    errors: FloatArray
    timestamps: FloatArray | None = None


def classification_error_stream(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    prediction_ts: npt.ArrayLike | None = None,
    *,
    threshold: float = 0.5,
) -> ErrorStream:
    """0/1 misclassifications of the labeled predictions, sorted by prediction time.

    Args:
        scores: ``(n,)`` positive-class probabilities or ``(n, k)`` class probabilities.
        labels: ``(n,)`` class indices; NaN or None rows are left out.
        prediction_ts: ``(n,)`` prediction times; rows are kept in the given order without.
        threshold: binary decision threshold.
    """
    p, task = parse_scores(scores)
    values, labeled = parse_labels(labels, int(p.shape[0]))
    n_classes = 2 if task == "binary" else int(p.shape[1])
    y_true = parse_class_labels(values[labeled], n_classes)
    predicted = (p >= threshold).astype(np.int64) if task == "binary" else np.argmax(p, axis=1)
    errors = (predicted[labeled] != y_true).astype(np.float64)
    return _ordered(
        errors, parse_timestamps(prediction_ts, labeled.shape[0], "prediction_ts"), labeled
    )


def regression_error_stream(
    predictions: npt.ArrayLike, labels: npt.ArrayLike, prediction_ts: npt.ArrayLike | None = None
) -> ErrorStream:
    """Absolute errors of the labeled predictions, sorted by prediction time."""
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
    values, labeled = parse_labels(labels, int(predicted.shape[0]))
    errors = np.abs(predicted[labeled] - values[labeled])
    if not np.all(np.isfinite(errors)):
        raise ValueError("predictions contain NaN or infinite values")
    return _ordered(
        errors, parse_timestamps(prediction_ts, labeled.shape[0], "prediction_ts"), labeled
    )


def _ordered(errors: FloatArray, timestamps: FloatArray | None, labeled: BoolArray) -> ErrorStream:
    if timestamps is None:
        return ErrorStream(errors)
    times = timestamps[labeled]
    if not np.all(np.isfinite(times)):
        raise ValueError("prediction_ts must be finite for labeled rows")
    # Stable, so equal timestamps keep their arrival order and re-runs agree.
    order = np.argsort(times, kind="stable")
    return ErrorStream(errors[order], times[order])
