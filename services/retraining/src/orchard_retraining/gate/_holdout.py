"""The holdout checked and read, and each metric computed on bootstrap-weighted rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from orchard_retraining.gate._types import Task

FloatArray = npt.NDArray[np.float64]
_PROBABILITY_SUM_TOLERANCE: Final = 1e-3


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Holdout:
    task: Task
    labels: FloatArray  # (n,): 0/1 (binary), class index (multiclass) or target (regression)
    champion: FloatArray  # (n,) or (n, k)
    candidate: FloatArray
    threshold: float

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


def _as_float_array(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    return array


def _validate(
    task: Task, labels: npt.ArrayLike, champion: npt.ArrayLike, candidate: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    y = _as_float_array("labels", labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("labels contain NaN or infinite values")
    n = y.shape[0]
    scores = {
        "champion": _as_float_array("champion scores", champion),
        "candidate": _as_float_array("candidate scores", candidate),
    }
    for name, s in scores.items():
        if task is Task.BINARY and s.ndim == 2 and s.shape[1] == 2:
            # scikit-learn's predict_proba layout: keep the positive class's column.
            scores[name] = s = s[:, 1]
        expected = "(n, k)" if task is Task.MULTICLASS else "(n,)"
        if (s.ndim != 2 if task is Task.MULTICLASS else s.ndim != 1) or s.shape[0] != n:
            raise ValueError(
                f"{name} scores for a {task.value} task must have shape {expected} with "
                f"n={n} holdout rows, got {s.shape}"
            )
    if scores["champion"].shape != scores["candidate"].shape:
        raise ValueError(
            f"champion and candidate scores differ in shape: "
            f"{scores['champion'].shape} vs {scores['candidate'].shape}"
        )
    if task is Task.REGRESSION:
        return y, scores["champion"], scores["candidate"]
    if not np.all(y == np.round(y)):
        raise ValueError("class labels must be integers")
    k = scores["champion"].shape[1] if task is Task.MULTICLASS else 2
    if task is Task.MULTICLASS and k < 2:
        raise ValueError(f"multiclass scores need at least 2 columns, got {k}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"class labels must lie in 0..{k - 1}, got {y.min():g}..{y.max():g}")
    for name, s in scores.items():
        finite = s[np.isfinite(s)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(f"{name} scores must be probabilities in [0, 1]")
        if task is Task.MULTICLASS:
            sums = s.sum(axis=1)
            bad = np.isfinite(sums) & (np.abs(sums - 1) > _PROBABILITY_SUM_TOLERANCE)
            if np.any(bad):
                raise ValueError(
                    f"{name} class probabilities must sum to 1 per row; "
                    f"{int(bad.sum())} rows do not"
                )
    return y, scores["champion"], scores["candidate"]


# --- metrics on weighted rows ------------------------------------------------------------------
# Each metric maps a row-weight matrix W (resamples x rows; a bootstrap resample's row counts,
# or a single row of ones for the holdout itself) to the metric per row of W, for both models
# at once: shape (resamples, 2), column 0 the champion, column 1 the candidate.

_Evaluator = Callable[[FloatArray], FloatArray]


def _predicted_class(h: _Holdout, scores: FloatArray) -> FloatArray:
    if h.task is Task.BINARY:
        return (scores >= h.threshold).astype(np.float64)
    classes: FloatArray = np.argmax(scores, axis=1).astype(np.float64)
    return classes


def _mean_of(per_row: FloatArray, n: int) -> _Evaluator:
    def evaluate(weights: FloatArray) -> FloatArray:
        return np.asarray((weights @ per_row) / n, dtype=np.float64)

    return evaluate


def _accuracy(h: _Holdout) -> _Evaluator:
    correct = np.column_stack(
        [_predicted_class(h, s) == h.labels for s in (h.champion, h.candidate)]
    ).astype(np.float64)
    return _mean_of(correct, h.n)


def _log_loss(h: _Holdout) -> _Evaluator:
    eps = np.finfo(np.float64).eps
    columns = []
    for s in (h.champion, h.candidate):
        if h.task is Task.BINARY:
            p_true = np.where(h.labels == 1, s, 1 - s)
        else:
            p_true = s[np.arange(h.n), h.labels.astype(np.intp)]
        columns.append(-np.log(np.clip(p_true, eps, 1 - eps)))
    return _mean_of(np.column_stack(columns), h.n)


def _f1(h: _Holdout) -> _Evaluator:
    k = h.champion.shape[1] if h.task is Task.MULTICLASS else 2
    classes = np.arange(k) if h.task is Task.MULTICLASS else np.array([1])
    truth = h.labels[:, None] == classes[None, :]  # (n, c)
    # Per model: true positives, and predicted + actual positives (the F1 denominator 2TP+FP+FN).
    blocks = []
    for s in (h.champion, h.candidate):
        predicted = _predicted_class(h, s)[:, None] == classes[None, :]
        blocks.extend([(truth & predicted), (truth.astype(np.int8) + predicted.astype(np.int8))])
    per_row = np.concatenate(blocks, axis=1).astype(np.float64)  # (n, 4c)
    c = classes.size

    def evaluate(weights: FloatArray) -> FloatArray:
        sums = weights @ per_row
        out = []
        for model in range(2):
            tp = sums[:, 2 * model * c : (2 * model + 1) * c]
            denominator = sums[:, (2 * model + 1) * c : (2 * model + 2) * c]
            f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
            out.append(f1.mean(axis=1))
        return np.column_stack(out)

    return evaluate


def _roc_auc(h: _Holdout) -> _Evaluator:
    positive_rows = np.flatnonzero(h.labels == 1)
    negative_rows = np.flatnonzero(h.labels != 1)
    models = []
    for s in (h.champion, h.candidate):
        order = np.argsort(s[negative_rows], kind="stable")
        sorted_negatives = s[negative_rows][order]
        # Where each positive's score falls among the sorted negatives: those strictly below
        # it end at `below`, ties end at `upto` (ties count half in the Mann-Whitney U).
        below = np.searchsorted(sorted_negatives, s[positive_rows], "left")
        upto = np.searchsorted(sorted_negatives, s[positive_rows], "right")
        models.append((negative_rows[order], below, upto))

    def evaluate(weights: FloatArray) -> FloatArray:
        w_pos = weights[:, positive_rows]
        pairs = w_pos.sum(axis=1) * weights[:, negative_rows].sum(axis=1)
        out = []
        for negatives_by_score, below, upto in models:
            cumulative = np.zeros((weights.shape[0], negatives_by_score.size + 1))
            np.cumsum(weights[:, negatives_by_score], axis=1, out=cumulative[:, 1:])
            wins = 0.5 * (cumulative[:, below] + cumulative[:, upto])
            u = np.einsum("ij,ij->i", w_pos, wins)
            out.append(np.divide(u, pairs, out=np.full_like(u, np.nan), where=pairs > 0))
        return np.column_stack(out)

    return evaluate


def _mae(h: _Holdout) -> _Evaluator:
    errors = np.column_stack([np.abs(s - h.labels) for s in (h.champion, h.candidate)])
    return _mean_of(errors, h.n)


def _rmse(h: _Holdout) -> _Evaluator:
    squared = np.column_stack([(s - h.labels) ** 2 for s in (h.champion, h.candidate)])
    mse = _mean_of(squared, h.n)

    def evaluate(weights: FloatArray) -> FloatArray:
        return np.sqrt(mse(weights))

    return evaluate


_EVALUATORS: Final[Mapping[str, Callable[[_Holdout], _Evaluator]]] = {
    "accuracy": _accuracy,
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
    "f1": _f1,
    "mae": _mae,
    "rmse": _rmse,
}
