"""Calibration check on labeled reference data, the precondition of label-free estimation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orchard_evaluation.quality._common import (
    FloatArray,
    IntArray,
    parse_class_labels,
    parse_labels,
    parse_scores,
)


@dataclass(frozen=True)
class CalibrationCheck:
    """Whether a classifier's probabilities can be taken at face value.

    Attributes:
        n_rows: labeled reference rows used.
        n_classes: classes of the model (2 for binary).
        n_bins: equal-width probability bins.
        ece: expected calibration error; for multi-class the mean over classes of each class's
            one-vs-rest ECE (class-wise ECE), since estimation uses every class's probability.
        p_value: chance of an ECE at least this large if the model were perfectly calibrated
            (consistency resampling, Bröcker & Smith 2007).
        tolerance: the largest ECE accepted as practically calibrated.
        alpha: significance level for ``p_value``.
        calibrated: False when the ECE is both significant (``p_value < alpha``) and above
            ``tolerance``; None without labeled rows.
        reason: the verdict in words.
    """

    n_rows: int
    n_classes: int
    n_bins: int
    ece: float | None
    p_value: float | None
    tolerance: float
    alpha: float
    calibrated: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "n_rows": self.n_rows,
            "n_classes": self.n_classes,
            "n_bins": self.n_bins,
            "ece": self.ece,
            "p_value": self.p_value,
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "calibrated": self.calibrated,
            "reason": self.reason,
        }


def check_calibration(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_bins: int = 10,
    tolerance: float = 0.02,
    alpha: float = 0.05,
    n_resamples: int = 200,
    seed: int = 0,
) -> CalibrationCheck:
    """Checks on labeled reference data that predicted probabilities are calibrated.

    A binned ECE alone is a poor verdict: on a few hundred rows a perfectly calibrated model
    shows an ECE of several points from sampling noise alone. So the ECE is compared with its
    distribution under perfect calibration (labels redrawn from the model's own
    probabilities), and the model is called miscalibrated only when its ECE is both
    significant and larger than ``tolerance``. Deterministic for a given ``seed``.

    Args:
        scores: ``(n,)`` positive-class probabilities or ``(n, k)`` class probabilities.
        labels: ``(n,)`` class indices; NaN or None rows are skipped.
        n_bins: equal-width bins over [0, 1].
        tolerance: ECE accepted as calibrated enough (for binary, roughly the largest bias
            tolerated in estimated accuracy).
        alpha: significance level of the resampling test.
        n_resamples: label redraws for the null distribution.
        seed: random seed of the redraws.

    Raises:
        ValueError: malformed input or parameters.
    """
    if n_bins < 1 or n_resamples < 1:
        raise ValueError("n_bins and n_resamples must be positive")
    if tolerance < 0 or not 0 < alpha < 1:
        raise ValueError("tolerance must be >= 0 and alpha in (0, 1)")
    probabilities, task = parse_scores(scores)
    values, labeled = parse_labels(labels, int(probabilities.shape[0]))
    n_classes = 2 if task == "binary" else int(probabilities.shape[1])
    y_true = parse_class_labels(values[labeled], n_classes)
    probabilities = probabilities[labeled]
    if y_true.size == 0:
        return CalibrationCheck(
            0, n_classes, n_bins, None, None, tolerance, alpha, None, "no labeled reference rows"
        )
    # Binary: the positive column carries all the information (the negative mirrors it).
    columns = probabilities[:, None] if task == "binary" else probabilities
    bins = np.minimum((columns * n_bins).astype(np.int64), n_bins - 1)
    observed = _ece(columns, bins, _one_hot(y_true, task, n_classes), n_bins)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(n_resamples):
        redrawn = sample_labels(probabilities, task, rng, 1)[0]
        if _ece(columns, bins, _one_hot(redrawn, task, n_classes), n_bins) >= observed:
            exceed += 1
    p_value = (1 + exceed) / (1 + n_resamples)
    calibrated = not (p_value < alpha and observed > tolerance)
    verdict = "calibrated" if calibrated else "miscalibrated"
    reason = f"{verdict}: ECE {observed:.4f} (tolerance {tolerance}), p-value {p_value:.3f}"
    return CalibrationCheck(
        int(y_true.size), n_classes, n_bins, observed, p_value, tolerance, alpha, calibrated, reason
    )


def sample_labels(
    probabilities: FloatArray, task: str, rng: np.random.Generator, n_draws: int
) -> IntArray:
    """Draws ``(n_draws, n)`` labels from the model's own probabilities (calibration assumed)."""
    n_rows = probabilities.shape[0]
    uniform = rng.random((n_draws, n_rows))
    if task == "binary":
        return (uniform < probabilities).astype(np.int64)
    cumulative = np.cumsum(probabilities, axis=1)
    drawn = (uniform[:, :, None] >= cumulative[None, :, :]).sum(axis=2)
    # Rounding can leave the last cumulative sum a hair under 1.
    clipped: IntArray = np.minimum(drawn, probabilities.shape[1] - 1).astype(np.int64)
    return clipped


def _one_hot(y: IntArray, task: str, n_classes: int) -> FloatArray:
    if task == "binary":
        hot: FloatArray = (y == 1).astype(np.float64)[:, None]
    else:
        hot = (y[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)
    return hot


def _ece(columns: FloatArray, bins: IntArray, targets: FloatArray, n_bins: int) -> float:
    # Per bin |sum(y - p)| / n equals (n_b / n) * |mean(y) - mean(p)|.
    residual = targets - columns
    total = 0.0
    for c in range(columns.shape[1]):
        per_bin = np.bincount(bins[:, c], weights=residual[:, c], minlength=n_bins)
        total += float(np.abs(per_bin).sum())
    return total / float(columns.shape[0] * columns.shape[1])
