"""Building column profiles from plain columns (numpy arrays or sequences; no pandas)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orchard_core.profiles._sketch import DEFAULT_SKETCH_K, sketch_values
from orchard_core.profiles._types import (
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
)
from orchard_core.profiles._values import (
    ColumnKind,
    ColumnValues,
    as_float_array,
    category_counts,
    column_length,
    distinct_counts,
    sort_counts,
)

DEFAULT_BINS: Final = 10
DEFAULT_QUANTILES: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def profile_columns(
    columns: Mapping[str, ColumnValues],
    kinds: Mapping[str, ColumnKind] | None = None,
    *,
    bins: int = DEFAULT_BINS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    edges_from: Mapping[str, ColumnProfile] | None = None,
    sketch_k: int = DEFAULT_SKETCH_K,
) -> dict[str, ColumnProfile]:
    """Profile plain columns of equal length.

    Args:
        columns: Column name to values (a numpy array or any sequence).
        kinds: Column kinds; a column not named here is numeric when its numpy dtype is
            (integer, float; not boolean), else categorical.
        bins: Target number of histogram bins; fewer when quantiles coincide.
        quantiles: Quantile levels to record, each in [0, 1].
        edges_from: Bin numeric columns on these profiles' edges instead of deriving new ones,
            so the result can be compared with, or merged into, them.
        sketch_k: The KLL sketches' ``k`` (see :data:`DEFAULT_SKETCH_K`).

    Returns:
        A profile per column, in the order of ``columns``.

    Raises:
        ValueError: Columns differ in length, ``bins`` < 1, or ``edges_from`` lacks a numeric
            column that is numeric here.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    lengths = {name: column_length(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")
    kinds = kinds or {}
    profiles: dict[str, ColumnProfile] = {}
    for name, values in columns.items():
        kind = kinds.get(name) or _infer_kind(values)
        if kind == "categorical":
            profiles[name] = categorical_profile(values)
            continue
        edges = None
        if edges_from is not None:
            prior = edges_from.get(name)
            if not isinstance(prior, NumericProfile):
                raise ValueError(f"edges_from has no numeric column {name!r}")
            edges = prior.histogram.edges
        profiles[name] = numeric_profile(values, bins, quantiles, edges, sketch_k)
    return profiles


def bin_counts(values: ArrayLike, edges: Sequence[float]) -> NDArray[np.int64]:
    """Histogram counts of the finite ``values`` over ``edges`` (the package's bin rule)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def numeric_profile(
    values: ColumnValues,
    bins: int = DEFAULT_BINS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    edges: Sequence[float] | None = None,
    sketch_k: int = DEFAULT_SKETCH_K,
) -> NumericProfile:
    """Profile one numeric column; values that are not finite numbers count as missing."""
    array = as_float_array(values)
    finite = array[~np.isnan(array)]
    if edges is None:
        cuts = (
            np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else np.empty(0)
        )
        edges = tuple(float(e) for e in np.unique(cuts))
    histogram = Histogram(
        edges=tuple(edges), counts=tuple(int(c) for c in bin_counts(finite, edges))
    )
    sketch = sketch_values(finite, sketch_k)
    if finite.size == 0:
        return NumericProfile(0, array.size, None, None, None, None, {}, histogram, sketch, {})
    levels = np.quantile(finite, np.asarray(quantiles, dtype=np.float64))
    return NumericProfile(
        count=int(finite.size),
        missing=int(array.size - finite.size),
        mean=float(finite.mean()),
        std=float(finite.std()),
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles={f"{q:g}": float(v) for q, v in zip(quantiles, levels, strict=True)},
        histogram=histogram,
        sketch=sketch,
        distinct=distinct_counts(finite),
    )


def categorical_profile(values: ColumnValues) -> CategoricalProfile:
    """Profile one categorical column (values as canonical text; None and NaN are missing)."""
    counts, missing = category_counts(values)
    return CategoricalProfile(
        count=sum(counts.values()), missing=missing, value_counts=sort_counts(counts)
    )


def _infer_kind(values: ColumnValues) -> ColumnKind:
    kind = values.dtype.kind if isinstance(values, np.ndarray) else np.asarray(values).dtype.kind
    return "numeric" if kind in "iuf" else "categorical"
