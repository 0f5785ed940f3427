"""Data and prediction drift of a model version over a time range, from window profiles.

The range's stored buckets are merged (never a rescan of raw events) and judged against the
version's reference profile with Evidently's default methods (see :mod:`drift`). A range
only covers whole buckets: those that *start* in ``[since, until)``.
"""

from __future__ import annotations

from typing import Any

from orchard_core.errors import InvalidInput, NotFound
from orchard_core.profiles import WindowProfile
from orchard_evaluation.drift import DatasetDrift, DriftOptions, detect_drift
from orchard_evaluation.references import ReferenceStore
from orchard_evaluation.windows import WindowStore

__all__ = ["DriftResult", "drift_of", "drift_report"]

DriftResult = tuple[DatasetDrift, DatasetDrift, int]


def drift_of(
    windows: WindowStore,
    references: ReferenceStore,
    model: str,
    version: str,
    since: float | None,
    until: float | None,
    options: DriftOptions | None = None,
) -> DriftResult:
    """Data drift, prediction drift and the number of rows judged.

    Raises:
        NotFound: the version has no reference profile.
        InvalidInput: ``options`` do not fit the columns (e.g. a method for a column kind).
    """
    reference = references.get(model, version)
    if reference is None:
        raise NotFound(
            f"no reference profile for {model} version {version}: drift needs one "
            "(PUT /v1/profiles/{model}/{version}, or register it in MLflow)"
        )
    window = windows.merge_range(model, version, since, until) or WindowProfile(0, {})
    try:
        data = detect_drift(reference.profile.features, window.features, options=options)
        prediction = detect_drift(reference.profile.outputs, window.outputs, options=options)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return data, prediction, window.n_rows


def drift_report(
    windows: WindowStore,
    references: ReferenceStore,
    model: str,
    version: str,
    since: float | None,
    until: float | None,
    options: DriftOptions | None = None,
) -> dict[str, Any]:
    """:func:`drift_of` as JSON-ready data."""
    data, prediction, n_rows = drift_of(windows, references, model, version, since, until, options)
    return {
        "model": model,
        "version": version,
        "window": {"since": since, "until": until},
        "n_rows": n_rows,
        "data_drift": data.to_dict(),
        "prediction_drift": prediction.to_dict(),
    }
