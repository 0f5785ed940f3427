"""Building profiles from data frames."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from orchard_pipelines.profiles._types import (
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    ReferenceProfile,
)

DEFAULT_BINS: Final = 10
DEFAULT_QUANTILES: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def build_profile(
    features: pd.DataFrame,
    *,
    categorical: Collection[str] = (),
    outputs: pd.DataFrame | None = None,
    categorical_outputs: Collection[str] = (),
    bins: int = DEFAULT_BINS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    edges_from: ReferenceProfile | None = None,
) -> ReferenceProfile:
    """Profile a frame of features and, optionally, the model outputs for the same rows.

    A column is categorical when it is named in ``categorical`` (``categorical_outputs`` for
    outputs) or its dtype is not numeric (strings, categories, booleans); otherwise numeric.

    Args:
        features: One row per example.
        categorical: Feature columns to treat as categorical even if numeric (e.g. codes).
        outputs: Model outputs, one row per row of ``features``.
        categorical_outputs: Output columns to treat as categorical (e.g. predicted classes).
        bins: Target number of histogram bins; fewer when quantiles coincide.
        quantiles: Quantile levels to record, each in [0, 1].
        edges_from: Bin numeric columns on this profile's edges instead of deriving new ones,
            so the result can be compared with, or merged into, that profile.

    Returns:
        The profile.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if outputs is not None and len(outputs) != len(features):
        raise ValueError(f"outputs have {len(outputs)} rows, features have {len(features)}")
    reference = edges_from.features if edges_from else {}
    reference_outputs = edges_from.outputs if edges_from else {}
    return ReferenceProfile(
        n_rows=len(features),
        features=_profile_frame(features, set(categorical), bins, quantiles, reference),
        outputs=(
            {}
            if outputs is None
            else _profile_frame(
                outputs, set(categorical_outputs), bins, quantiles, reference_outputs
            )
        ),
    )


def bin_counts(values: ArrayLike, edges: Sequence[float]) -> np.ndarray:
    """Histogram counts of the finite ``values`` over ``edges`` (the module's bin rule)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def _profile_frame(
    frame: pd.DataFrame,
    categorical: set[str],
    bins: int,
    quantiles: Sequence[float],
    reference: Mapping[str, ColumnProfile],
) -> dict[str, ColumnProfile]:
    profiles: dict[str, ColumnProfile] = {}
    for name in frame.columns:
        column = frame[name]
        key = str(name)
        if key in categorical or not _is_numeric(column):
            profiles[key] = _categorical_profile(column)
            continue
        edges = None
        if reference:
            prior = reference.get(key)
            if not isinstance(prior, NumericProfile):
                raise ValueError(f"edges_from has no numeric column {key!r}")
            edges = prior.histogram.edges
        profiles[key] = _numeric_profile(column, bins, quantiles, edges)
    return profiles


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _numeric_profile(
    column: pd.Series, bins: int, quantiles: Sequence[float], edges: tuple[float, ...] | None
) -> NumericProfile:
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    if edges is None:
        cuts = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else []
        edges = tuple(float(e) for e in np.unique(cuts))
    histogram = Histogram(edges=edges, counts=tuple(int(c) for c in bin_counts(finite, edges)))
    if finite.size == 0:
        return NumericProfile(0, len(values), None, None, None, None, {}, histogram)
    levels = np.quantile(finite, np.asarray(quantiles, dtype=np.float64))
    return NumericProfile(
        count=int(finite.size),
        missing=int(values.size - finite.size),
        mean=float(finite.mean()),
        std=float(finite.std()),
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles={f"{q:g}": float(v) for q, v in zip(quantiles, levels, strict=True)},
        histogram=histogram,
    )


def _categorical_profile(column: pd.Series) -> CategoricalProfile:
    present = column.dropna()
    counts: dict[str, int] = {}
    for value, count in present.astype(str).value_counts(sort=False).items():
        counts[str(value)] = counts.get(str(value), 0) + int(count)
    # Most frequent first, ties by value, so equal data always serialises identically.
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return CategoricalProfile(
        count=int(present.size), missing=int(column.size - present.size), value_counts=ordered
    )
