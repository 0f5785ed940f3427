"""Merging profiles of disjoint data binned on the same edges."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orchard_core.profiles._sketch import merge_sketches, sketch_quantiles
from orchard_core.profiles._types import (
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    ReferenceProfile,
)
from orchard_core.profiles._values import merge_distinct, sort_counts


def merge_profiles(first: ReferenceProfile, second: ReferenceProfile) -> ReferenceProfile:
    """Combine profiles of two disjoint data sets binned on the same edges.

    Counts, histograms, distinct values, min, max, mean and std combine exactly; sketches are
    merged. Quantiles are read from the merged sketch; when either side has none (v1), they
    are re-estimated by interpolating within the merged histogram (bounded by min and max):
    close between the outer edges, rough in the open outer bins.

    Raises:
        ValueError: The profiles have different columns, kinds or histogram edges.
    """
    return ReferenceProfile(
        n_rows=first.n_rows + second.n_rows,
        features=_merge_columns(first.features, second.features),
        outputs=_merge_columns(first.outputs, second.outputs),
    )


def merge_categorical(a: CategoricalProfile, b: CategoricalProfile) -> CategoricalProfile:
    """Exact merge of two categorical profiles."""
    counts = dict(a.value_counts)
    for value, count in b.value_counts.items():
        counts[value] = counts.get(value, 0) + count
    return CategoricalProfile(
        count=a.count + b.count, missing=a.missing + b.missing, value_counts=sort_counts(counts)
    )


def _merge_columns(
    first: Mapping[str, ColumnProfile], second: Mapping[str, ColumnProfile]
) -> dict[str, ColumnProfile]:
    if first.keys() != second.keys():
        raise ValueError(f"profiles cover different columns: {sorted(first)} vs {sorted(second)}")
    merged: dict[str, ColumnProfile] = {}
    for name, a in first.items():
        b = second[name]
        if isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
            merged[name] = merge_categorical(a, b)
        elif isinstance(a, NumericProfile) and isinstance(b, NumericProfile):
            merged[name] = _merge_numeric(name, a, b)
        else:
            raise ValueError(f"column {name!r} is {a.kind} in one profile, {b.kind} in the other")
    return merged


def _merge_numeric(name: str, a: NumericProfile, b: NumericProfile) -> NumericProfile:
    if a.histogram.edges != b.histogram.edges:
        raise ValueError(f"column {name!r} was binned on different edges; build with edges_from")
    histogram = Histogram(
        edges=a.histogram.edges,
        counts=tuple(x + y for x, y in zip(a.histogram.counts, b.histogram.counts, strict=True)),
    )
    missing = a.missing + b.missing
    # A v1 side has no sketch: a merged sketch would silently describe only the other side.
    sketch = merge_sketches([a.sketch, b.sketch]) if a.sketch and b.sketch else None
    distinct = merge_distinct(a.distinct, b.distinct)
    if b.count == 0 or a.count == 0:
        base = a if b.count == 0 else b
        return NumericProfile(
            base.count,
            missing,
            base.mean,
            base.std,
            base.min,
            base.max,
            base.quantiles,
            histogram,
            sketch,
            distinct,
        )
    a_mean, a_std, a_min, a_max = _statistics(name, a)
    b_mean, b_std, b_min, b_max = _statistics(name, b)
    n = a.count + b.count
    mean = (a.count * a_mean + b.count * b_mean) / n
    variance = (
        a.count * (a_std**2 + (a_mean - mean) ** 2) + b.count * (b_std**2 + (b_mean - mean) ** 2)
    ) / n
    low, high = min(a_min, b_min), max(a_max, b_max)
    levels = list(a.quantiles)
    if sketch is not None:
        values = sketch_quantiles(sketch, [float(q) for q in levels])
        quantiles = {q: min(max(v, low), high) for q, v in zip(levels, values, strict=True)}
    else:
        quantiles = {q: _histogram_quantile(histogram, float(q), low, high) for q in levels}
    return NumericProfile(
        count=n,
        missing=missing,
        mean=mean,
        std=float(np.sqrt(variance)),
        min=low,
        max=high,
        quantiles=quantiles,
        histogram=histogram,
        sketch=sketch,
        distinct=distinct,
    )


def _statistics(name: str, profile: NumericProfile) -> tuple[float, float, float, float]:
    if profile.mean is None or profile.std is None or profile.min is None or profile.max is None:
        raise ValueError(f"column {name!r} has {profile.count} values but no statistics")
    return profile.mean, profile.std, profile.min, profile.max


def _histogram_quantile(histogram: Histogram, level: float, low: float, high: float) -> float:
    counts = np.asarray(histogram.counts, dtype=np.float64)
    lower = np.clip(np.concatenate([[low], histogram.edges]), low, high)
    upper = np.clip(np.concatenate([histogram.edges, [high]]), low, high)
    target = level * counts.sum()
    before = np.concatenate([[0.0], np.cumsum(counts)[:-1]])
    index = int(np.searchsorted(np.cumsum(counts), target, side="left"))
    index = min(index, len(counts) - 1)
    inside = (target - before[index]) / counts[index] if counts[index] else 0.0
    return float(lower[index] + inside * (upper[index] - lower[index]))
