"""Label-free quality estimate: confidence-based performance estimation (CBPE).

CBPE (as in NannyML) reads a classifier's predicted probabilities as the chance that each
label is positive, so the expected confusion matrix, and every metric built on it, follows
from the scores alone. It is only as good as two assumptions that no score can verify:

* the probabilities are calibrated (check with :func:`check_calibration` on labeled
  reference data; a miscalibrated model biases every estimate), and
* there is no concept drift: P(label | inputs) is the same as on the reference data. Data
  drift (a change in P(inputs)) is fine; that is what CBPE is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orchard_evaluation.quality._common import (
    FloatArray,
    IntArray,
    Task,
    finite_or_none,
    macro_scores,
    parse_scores,
    positive_class_ranks,
)
from orchard_evaluation.quality.calibration import CalibrationCheck, sample_labels

_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_UNDEFINED = {
    "accuracy": "no predictions",
    "precision": "no predicted positives",
    "recall": "the scores expect no positives",
    "f1": "no predicted positives and the scores expect none",
    "roc_auc": "the scores expect no (positive, negative) pairs",
}
# Cap on simulated labels held in memory at once (rows x draws x classes).
_SIMULATION_CELLS = 4_000_000


@dataclass(frozen=True)
class EstimatedMetric:
    """An expected metric and the interval where the realized one should fall.

    ``lower``/``upper`` bound the realized metric with the requested confidence if the model is
    calibrated: they are percentiles of the metric over labels simulated from the scores, so
    they carry sampling noise only, not bias from miscalibration or concept drift.
    """

    value: float | None
    lower: float | None = None
    upper: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        """JSON-safe form."""
        return {
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class EstimatedQuality:
    """CBPE estimate for one window of predictions (multi-class: macro averages, OvR AUC)."""

    task: Task
    n_classes: int
    n_predictions: int
    threshold: float | None
    confidence: float
    expected_confusion: tuple[tuple[float, ...], ...]
    accuracy: EstimatedMetric
    precision: EstimatedMetric
    recall: EstimatedMetric
    f1: EstimatedMetric
    roc_auc: EstimatedMetric
    calibration: CalibrationCheck | None
    trustworthy: bool | None
    trust_reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; ``expected_confusion`` rows are true classes, columns predicted."""
        return {
            "task": self.task,
            "n_classes": self.n_classes,
            "n_predictions": self.n_predictions,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "expected_confusion": [list(row) for row in self.expected_confusion],
            "metrics": {name: getattr(self, name).to_dict() for name in _METRICS},
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "trustworthy": self.trustworthy,
            "trust_reason": self.trust_reason,
        }


def estimate_classification_quality(
    scores: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    calibration: CalibrationCheck | None = None,
    confidence: float = 0.95,
    n_simulations: int = 400,
    seed: int = 0,
) -> EstimatedQuality:
    """Estimates accuracy, precision, recall, F1 and ROC AUC without labels (CBPE).

    Point estimates are ratios of expected confusion counts, as NannyML computes them; the
    expected AUC is the expected number of correctly ordered (positive, negative) pairs over
    the expected number of such pairs. Assumes calibrated scores and no concept drift.

    Args:
        scores: ``(n,)`` positive-class probabilities or ``(n, k)`` class probabilities.
        threshold: binary decision threshold (score >= threshold is positive).
        calibration: the check of this model's scores on labeled reference data; decides
            ``trustworthy`` (None when not given).
        confidence: level of the intervals.
        n_simulations: label draws for the intervals; 0 leaves intervals out.
        seed: random seed of the draws, so a re-run gives the same result.

    Raises:
        ValueError: malformed scores or parameters.
    """
    if not 0.0 <= threshold <= 1.0 or not 0.0 < confidence < 1.0 or n_simulations < 0:
        raise ValueError("need threshold in [0, 1], confidence in (0, 1), n_simulations >= 0")
    p, task = parse_scores(scores)
    n_rows = int(p.shape[0])
    matrix = np.column_stack([1 - p, p]) if task == "binary" else p
    n_classes = int(matrix.shape[1])
    if calibration is not None and calibration.n_classes != n_classes:
        raise ValueError("calibration check is for a model with a different number of classes")
    trustworthy, trust_reason = _trust(calibration)
    predicted = (p >= threshold).astype(np.int64) if task == "binary" else np.argmax(p, axis=1)
    # E[C[true, pred]] = sum over rows predicted `pred` of P(label = true).
    confusion = np.zeros((n_classes, n_classes))
    for c in range(n_classes):
        confusion[:, c] = matrix[predicted == c].sum(axis=0)
    estimates = _estimates(matrix, task, predicted, confusion, confidence, n_simulations, seed)
    return EstimatedQuality(
        task=task,
        n_classes=n_classes,
        n_predictions=n_rows,
        threshold=threshold if task == "binary" else None,
        confidence=confidence,
        expected_confusion=tuple(tuple(float(v) for v in row) for row in confusion),
        accuracy=estimates["accuracy"],
        precision=estimates["precision"],
        recall=estimates["recall"],
        f1=estimates["f1"],
        roc_auc=estimates["roc_auc"],
        calibration=calibration,
        trustworthy=trustworthy,
        trust_reason=trust_reason,
    )


def _estimates(
    matrix: FloatArray,
    task: Task,
    predicted: IntArray,
    confusion: FloatArray,
    confidence: float,
    n_simulations: int,
    seed: int,
) -> dict[str, EstimatedMetric]:
    n_rows, n_classes = matrix.shape
    if n_rows == 0:
        return {name: EstimatedMetric(None, reason="no predictions") for name in _METRICS}
    # Binary AUC is the positive class's alone; multi-class averages one-vs-rest AUCs.
    classes = [1] if task == "binary" else list(range(n_classes))
    ranks = {c: positive_class_ranks(matrix[:, c]) for c in classes}
    point = _metrics(task, confusion, [_expected_auc_terms(matrix[:, c]) for c in classes])
    simulated = _simulate(matrix, task, predicted, ranks, n_simulations, seed)
    tail = (1 - confidence) / 2
    estimates = {}
    for i, name in enumerate(_METRICS):
        value = finite_or_none(point[i])
        draws = simulated[:, i][np.isfinite(simulated[:, i])]
        lower = upper = None
        # Where the metric is often undefined (tiny windows), the defined draws are a biased
        # sample, so no interval is better than a misleading one.
        if value is not None and draws.size and draws.size >= 0.9 * n_simulations:
            lower, upper = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
        reason = None if value is not None else _UNDEFINED[name]
        estimates[name] = EstimatedMetric(value, lower, upper, reason)
    return estimates


def _trust(calibration: CalibrationCheck | None) -> tuple[bool | None, str]:
    if calibration is None:
        return None, "calibration not checked on labeled reference data"
    if calibration.calibrated is None:
        return None, f"calibration unknown: {calibration.reason}"
    if not calibration.calibrated:
        return False, f"reference scores are {calibration.reason}"
    return True, (
        f"reference scores are {calibration.reason}; "
        "still assumes no concept drift since the reference period"
    )


def _metrics(task: Task, confusion: FloatArray, auc_terms: list[tuple[float, float]]) -> FloatArray:
    """Accuracy, precision, recall, F1 and ROC AUC from a (possibly expected) confusion matrix.

    ``auc_terms`` holds the (numerator, denominator) of each one-vs-rest AUC: the positive
    class's alone for a binary task.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.trace(confusion) / confusion.sum()
        aucs = np.array([num / den if den > 0 else np.nan for num, den in auc_terms])
        if task == "binary":
            tp, fp, fn = confusion[1, 1], confusion[0, 1], confusion[1, 0]
            precision, recall, f1 = tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)
            auc = aucs[0]
        else:
            precision, recall, f1 = macro_scores(confusion)
            defined = aucs[np.isfinite(aucs)]
            auc = float(defined.mean()) if defined.size else np.nan
    return np.array([accuracy, precision, recall, f1, auc], dtype=np.float64)


def _expected_auc_terms(p: FloatArray) -> tuple[float, float]:
    """Expected correctly ordered (positive, negative) pairs and expected pairs, ties half."""
    negative = 1 - p
    unique, group = np.unique(p, return_inverse=True)
    group_negative = np.bincount(group, weights=negative, minlength=unique.shape[0])
    below = np.cumsum(group_negative) - group_negative
    # A row is never paired with itself, hence the subtraction of its own negative mass.
    tied = group_negative[group] - negative
    numerator = float(np.sum(p * (below[group] + 0.5 * tied)))
    denominator = float(p.sum() * negative.sum() - np.sum(p * negative))
    return numerator, denominator


def _simulate(
    matrix: FloatArray,
    task: Task,
    predicted: IntArray,
    ranks: dict[int, FloatArray],
    n_simulations: int,
    seed: int,
) -> FloatArray:
    """Realized metrics over labels drawn from the scores, one row per draw."""
    n_rows, n_classes = matrix.shape
    out = np.empty((n_simulations, len(_METRICS)))
    rng = np.random.default_rng(seed)
    batch = max(1, _SIMULATION_CELLS // (n_rows * n_classes))
    source = matrix[:, 1] if task == "binary" else matrix
    for start in range(0, n_simulations, batch):
        draws = sample_labels(source, task, rng, min(batch, n_simulations - start))
        cells = draws * n_classes + predicted[None, :]
        for j, labels in enumerate(draws):
            confusion = np.bincount(cells[j], minlength=n_classes**2).reshape(n_classes, -1)
            out[start + j] = _metrics(task, confusion.astype(np.float64), _auc_terms(labels, ranks))
    return out


def _auc_terms(labels: IntArray, ranks: dict[int, FloatArray]) -> list[tuple[float, float]]:
    """Mann-Whitney (numerator, denominator) of each class's AUC for one draw of labels."""
    terms = []
    for c, class_ranks in ranks.items():
        positives = labels == c
        n_pos = float(positives.sum())
        n_neg = float(labels.shape[0]) - n_pos
        rank_sum = float(class_ranks[positives].sum())
        terms.append((rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg))
    return terms
