"""Realized model quality: metrics computed once labels have arrived.

Every metric that is undefined on the data (no labels, one class only) is None with a reason,
never NaN and never an exception; only malformed input raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orchard_evaluation.quality._common import (
    ONE_CLASS,
    BoolArray,
    FloatArray,
    IntArray,
    MetricValue,
    Task,
    finite_or_none,
    macro_scores,
    parse_class_labels,
    parse_labels,
    parse_scores,
    parse_timestamps,
    roc_auc,
    undefined,
)

_NO_LABELS = "no labeled predictions"
# accuracy, precision, recall, F1, ROC AUC, log loss
_Metrics = tuple[MetricValue, MetricValue, MetricValue, MetricValue, MetricValue, MetricValue]
# sklearn's log_loss clips to the machine epsilon of the dtype; we match it.
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class LabelStats:
    """How many predictions have labels, and how late the labels came.

    Attributes:
        n_predictions: predictions in the window.
        n_labeled: predictions with a label.
        coverage: ``n_labeled / n_predictions``; None without predictions.
        delay_median_s: median of label time minus prediction time, in seconds.
        delay_p90_s: 90th percentile of the same delay.
    """

    n_predictions: int
    n_labeled: int
    coverage: float | None
    delay_median_s: float | None
    delay_p90_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "n_predictions": self.n_predictions,
            "n_labeled": self.n_labeled,
            "coverage": self.coverage,
            "delay_median_s": self.delay_median_s,
            "delay_p90_s": self.delay_p90_s,
        }


@dataclass(frozen=True)
class ClassificationQuality:
    """Realized classifier metrics; multi-class ones are macro averages (AUC one-vs-rest)."""

    task: Task
    n_classes: int
    threshold: float | None
    labels: LabelStats
    accuracy: MetricValue
    precision: MetricValue
    recall: MetricValue
    f1: MetricValue
    roc_auc: MetricValue
    log_loss: MetricValue

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        metrics = {
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "roc_auc": self.roc_auc,
            "log_loss": self.log_loss,
        }
        return {
            "task": self.task,
            "n_classes": self.n_classes,
            "threshold": self.threshold,
            "average": "binary" if self.task == "binary" else "macro",
            "labels": self.labels.to_dict(),
            "metrics": {name: metric.to_dict() for name, metric in metrics.items()},
        }


@dataclass(frozen=True)
class RegressionQuality:
    """Realized regressor metrics."""

    labels: LabelStats
    mae: MetricValue
    rmse: MetricValue

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "task": "regression",
            "labels": self.labels.to_dict(),
            "metrics": {"mae": self.mae.to_dict(), "rmse": self.rmse.to_dict()},
        }


def label_stats(
    labeled: BoolArray, prediction_ts: FloatArray | None, label_ts: FloatArray | None
) -> LabelStats:
    """Counts, coverage and label delay for one window of predictions."""
    n_predictions = int(labeled.shape[0])
    n_labeled = int(labeled.sum())
    median: float | None = None
    p90: float | None = None
    if prediction_ts is not None and label_ts is not None:
        delays = (label_ts - prediction_ts)[labeled]
        delays = delays[np.isfinite(delays)]
        if delays.size:
            median = finite_or_none(float(np.median(delays)))
            p90 = finite_or_none(float(np.percentile(delays, 90)))
    return LabelStats(
        n_predictions=n_predictions,
        n_labeled=n_labeled,
        coverage=n_labeled / n_predictions if n_predictions else None,
        delay_median_s=median,
        delay_p90_s=p90,
    )


def classification_quality(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    prediction_ts: npt.ArrayLike | None = None,
    label_ts: npt.ArrayLike | None = None,
    threshold: float = 0.5,
) -> ClassificationQuality:
    """Realized metrics of a classifier over one window of predictions.

    Args:
        scores: ``(n,)`` probability of the positive class, or ``(n, k)`` class probabilities.
        labels: ``(n,)`` true class index (0/1 for binary); NaN or None where not labeled yet.
        prediction_ts: ``(n,)`` prediction times, seconds since the epoch.
        label_ts: ``(n,)`` label arrival times, seconds since the epoch; NaN where unknown.
            The label delay needs both timestamps and is taken over labeled rows only.
        threshold: a binary prediction is positive when its score is >= threshold.

    Returns:
        Accuracy, precision, recall, F1, ROC AUC and log loss (binary, or macro-averaged with
        one-vs-rest AUC over the classes seen), plus label coverage and delay.

    Raises:
        ValueError: malformed scores, labels or timestamps.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    probabilities, task = parse_scores(scores)
    n_rows = int(probabilities.shape[0])
    values, labeled = parse_labels(labels, n_rows)
    stats = label_stats(
        labeled,
        parse_timestamps(prediction_ts, n_rows, "prediction_ts"),
        parse_timestamps(label_ts, n_rows, "label_ts"),
    )
    n_classes = 2 if task == "binary" else int(probabilities.shape[1])
    y_true = parse_class_labels(values[labeled], n_classes)
    probabilities = probabilities[labeled]
    if y_true.size == 0:
        nothing = undefined(_NO_LABELS)
        metrics: _Metrics = (nothing,) * 6
    elif task == "binary":
        metrics = _binary_metrics(probabilities, y_true, threshold)
    else:
        metrics = _multiclass_metrics(probabilities, y_true)
    return ClassificationQuality(
        task,
        n_classes,
        threshold if task == "binary" else None,
        stats,
        *metrics,
    )


def regression_quality(
    predictions: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    prediction_ts: npt.ArrayLike | None = None,
    label_ts: npt.ArrayLike | None = None,
) -> RegressionQuality:
    """Realized MAE and RMSE of a regressor over one window of predictions.

    Args:
        predictions: ``(n,)`` predicted values.
        labels: ``(n,)`` true values; NaN or None where not labeled yet.
        prediction_ts: ``(n,)`` prediction times, seconds since the epoch.
        label_ts: ``(n,)`` label arrival times, seconds since the epoch.

    Raises:
        ValueError: malformed predictions, labels or timestamps.
    """
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(predicted)):
        raise ValueError("predictions contain NaN or infinite values")
    n_rows = int(predicted.shape[0])
    values, labeled = parse_labels(labels, n_rows)
    stats = label_stats(
        labeled,
        parse_timestamps(prediction_ts, n_rows, "prediction_ts"),
        parse_timestamps(label_ts, n_rows, "label_ts"),
    )
    if not labeled.any():
        return RegressionQuality(stats, undefined(_NO_LABELS), undefined(_NO_LABELS))
    errors = predicted[labeled] - values[labeled]
    return RegressionQuality(
        stats,
        MetricValue.of(float(np.mean(np.abs(errors))), _NO_LABELS),
        MetricValue.of(float(np.sqrt(np.mean(errors**2))), _NO_LABELS),
    )


def _binary_metrics(p: FloatArray, y_true: IntArray, threshold: float) -> _Metrics:
    predicted = p >= threshold
    actual = y_true == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    clipped = np.clip(p, _EPS, 1 - _EPS)
    log_loss = -np.mean(np.where(actual, np.log(clipped), np.log1p(-clipped)))
    return (
        MetricValue(float(np.mean(predicted == actual))),
        _ratio(tp, tp + fp, "no positive predictions among labeled rows"),
        _ratio(tp, tp + fn, "no positive labels"),
        _ratio(2 * tp, 2 * tp + fp + fn, "no positive labels and no positive predictions"),
        roc_auc(p, actual),
        MetricValue.of(float(log_loss), _NO_LABELS),
    )


def _multiclass_metrics(p: FloatArray, y_true: IntArray) -> _Metrics:
    n_classes = p.shape[1]
    y_pred = np.argmax(p, axis=1)
    confusion = np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
    precision, recall, f1 = macro_scores(confusion.astype(np.float64))
    aucs = [roc_auc(p[:, c], y_true == c).value for c in range(n_classes)]
    defined_aucs = [auc for auc in aucs if auc is not None]
    picked = np.clip(p[np.arange(y_true.shape[0]), y_true], _EPS, 1 - _EPS)
    return (
        MetricValue(float(np.mean(y_pred == y_true))),
        MetricValue(precision),
        MetricValue(recall),
        MetricValue(f1),
        MetricValue(float(np.mean(defined_aucs))) if defined_aucs else undefined(ONE_CLASS),
        MetricValue.of(float(-np.mean(np.log(picked))), _NO_LABELS),
    )


def _ratio(numerator: int, denominator: int, reason: str) -> MetricValue:
    return MetricValue(numerator / denominator) if denominator else undefined(reason)
