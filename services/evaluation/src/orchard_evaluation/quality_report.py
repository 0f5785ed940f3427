"""A model version's quality over a window: realized, estimated and concept drift together.

The stored predictions of the window are read back as rows (see :mod:`rows`), the score
column is picked, and the quality package does the statistics. Which output is the score:
``output`` when given; else ``predict_proba`` when the model returns it (the runtime's
class probabilities); else the model's only output. The task follows from the scores: a
``[n, 2]`` or a single probability per row is binary, ``[n, k]`` multi-class, anything else
(``task="regression"``) a regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from orchard_core.errors import InvalidInput, NotFound
from orchard_evaluation.db import Database
from orchard_evaluation.quality import (
    check_calibration,
    classification_error_stream,
    classification_quality,
    detect_concept_drift,
    estimate_classification_quality,
    regression_error_stream,
    regression_quality,
)
from orchard_evaluation.rows import RowQuery, iter_rows

__all__ = ["QualityQuery", "evaluate_quality"]

PROBABILITIES: Final = "predict_proba"
# Fewer labeled rows than this and the calibration check is left out: too noisy to judge.
MIN_CALIBRATION_ROWS: Final = 200


@dataclass(frozen=True)
class QualityQuery:
    """What to evaluate, and how."""

    model: str
    version: str | None = None
    since: float | None = None
    until: float | None = None
    output: str | None = None
    task: Literal["classification", "regression"] = "classification"
    threshold: float = 0.5
    concept_method: str = "adwin"
    concept_params: Mapping[str, Any] | None = None
    max_rows: int = 1_000_000


def evaluate_quality(database: Database, query: QualityQuery) -> dict[str, Any]:
    """Realized metrics, the label-free estimate and concept drift for one window.

    Raises:
        NotFound: no prediction of the model (version) in the window.
        InvalidInput: the score output cannot be found or is not usable for the task.
    """
    spec = RowQuery(query.model, query.version, query.since, query.until)
    rows: list[dict[str, Any]] = []
    for page in iter_rows(database, spec):
        rows.extend(page)
        if len(rows) > query.max_rows:
            raise InvalidInput(
                f"more than {query.max_rows} predictions in the window: ask for a shorter one"
            )
    if not rows:
        raise NotFound(f"no predictions of {_what(query)} in the window")
    output = _score_output(rows, query.output)
    labels = np.array(
        [np.nan if r["label"] is None else _number(r["label"]) for r in rows], dtype=np.float64
    )
    predicted_at = np.array([r["ts"] for r in rows], dtype=np.float64)
    labeled_at = np.array(
        [np.nan if r["label_ts"] is None else r["label_ts"] for r in rows], dtype=np.float64
    )
    report: dict[str, Any] = {
        "model": query.model,
        "version": query.version,
        "window": {"since": query.since, "until": query.until},
        "output": output,
        "task": query.task,
        "n_predictions": len(rows),
    }
    try:
        scores = np.array([r["outputs"].get(output) for r in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"output {output!r} is not numeric in every prediction") from None
    try:
        if query.task == "regression":
            realized = regression_quality(
                scores, labels, prediction_ts=predicted_at, label_ts=labeled_at
            )
            stream = regression_error_stream(scores, labels, predicted_at)
            report["realized"] = realized.to_dict()
        else:
            realized_c = classification_quality(
                scores,
                labels,
                prediction_ts=predicted_at,
                label_ts=labeled_at,
                threshold=query.threshold,
            )
            labeled = ~np.isnan(labels)
            calibration = (
                check_calibration(scores[labeled], labels[labeled])
                if labeled.sum() >= MIN_CALIBRATION_ROWS
                else None
            )
            estimate = estimate_classification_quality(
                scores, threshold=query.threshold, calibration=calibration
            )
            stream = classification_error_stream(
                scores, labels, predicted_at, threshold=query.threshold
            )
            report["realized"] = realized_c.to_dict()
            report["estimated"] = estimate.to_dict()
        drift = detect_concept_drift(stream, query.concept_method, query.concept_params)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    report["concept_drift"] = drift.to_dict()
    return report


def _score_output(rows: list[dict[str, Any]], wanted: str | None) -> str:
    outputs: list[str] = sorted({str(k) for r in rows[:100] for k in r["outputs"]})
    if wanted is not None:
        if wanted not in outputs:
            raise InvalidInput(f"no output {wanted!r}; the predictions have {', '.join(outputs)}")
        return wanted
    if PROBABILITIES in outputs:
        return PROBABILITIES
    if len(outputs) == 1:
        return outputs[0]
    raise InvalidInput(
        f"which output is the score? pass output= one of {', '.join(outputs) or '(none)'}"
    )


def _number(label: Any) -> float:
    if isinstance(label, bool):
        return float(label)
    if isinstance(label, int | float):
        return float(label)
    raise InvalidInput(f"label {label!r} is not a number: labels must be class indices or values")


def _what(query: QualityQuery) -> str:
    return query.model if query.version is None else f"{query.model} version {query.version}"
