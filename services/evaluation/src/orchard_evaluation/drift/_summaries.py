"""What the drift statistics read from a column summary, whatever kind of profile it came from.

A numeric column becomes a weighted sample, taken from the best source it has:

1. ``distinct``: exact counts of each value (columns with at most 20 distinct values);
2. the KLL sketch's retained values and weights (exact while it holds every value, else within
   its rank error);
3. v1 profiles, which have neither: a piecewise-linear quantile function through min, max, the
   recorded quantiles and the cumulative histogram at its edges, read at
   :data:`FALLBACK_POINTS` evenly spaced levels. Coarse: expect normed Wasserstein errors of a
   few hundredths and KS statistics off by up to a histogram bin's mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

from orchard_core.profiles import (
    CategoricalProfile,
    Histogram,
    NumericProfile,
    NumericWindow,
    sketch_items,
)

ColumnSummary: TypeAlias = NumericProfile | NumericWindow | CategoricalProfile
FloatArray: TypeAlias = NDArray[np.float64]

FALLBACK_POINTS: Final = 1000


@dataclass(frozen=True)
class NumericView:
    """A numeric column as the statistics see it."""

    count: int
    std: float | None
    min: float | None
    max: float | None
    distinct: dict[float, int] | None
    sketch: bytes | None
    histogram: Histogram
    quantiles: dict[str, float]

    def sample(self) -> tuple[FloatArray, FloatArray]:
        """Sorted values and weights summing to ``count`` (see module docs for the source)."""
        if self.count == 0:
            return np.empty(0), np.empty(0)
        if self.distinct is not None:
            values = np.fromiter(self.distinct.keys(), dtype=np.float64)
            weights = np.fromiter(self.distinct.values(), dtype=np.float64)
            order = np.argsort(values)
            return values[order], weights[order]
        if self.sketch is not None:
            values, weights = sketch_items(self.sketch)
            return values, weights * (self.count / weights.sum())
        return self._fallback_sample()

    def value_counts(self) -> dict[float, float]:
        """Weight of each distinct value (exact when ``distinct`` is known)."""
        if self.distinct is not None:
            return {k: float(v) for k, v in self.distinct.items()}
        values, weights = self.sample()
        uniques, index = np.unique(values, return_inverse=True)
        totals = np.bincount(index, weights=weights, minlength=uniques.size)
        return {float(u): float(t) for u, t in zip(uniques, totals, strict=True)}

    def _fallback_sample(self) -> tuple[FloatArray, FloatArray]:
        if self.min is None or self.max is None:
            raise ValueError("numeric column has values but no min or max")
        levels = [0.0, 1.0, *(float(q) for q in self.quantiles)]
        points = [self.min, self.max, *self.quantiles.values()]
        counts = np.asarray(self.histogram.counts, dtype=np.float64)
        if counts.sum() > 0:
            levels += list(np.cumsum(counts)[:-1] / counts.sum())
            points += list(self.histogram.edges)
        order = np.argsort(levels, kind="stable")
        level_array = np.asarray(levels)[order]
        point_array = np.maximum.accumulate(np.clip(np.asarray(points)[order], self.min, self.max))
        grid = (np.arange(FALLBACK_POINTS) + 0.5) / FALLBACK_POINTS
        values = np.interp(grid, level_array, point_array)
        return values, np.full(FALLBACK_POINTS, self.count / FALLBACK_POINTS)


def numeric_view(summary: NumericProfile | NumericWindow) -> NumericView:
    """The statistics' view of a reference or window numeric column."""
    quantiles = summary.quantiles if isinstance(summary, NumericProfile) else {}
    return NumericView(
        count=summary.count,
        std=summary.std,
        min=summary.min,
        max=summary.max,
        distinct=summary.distinct,
        sketch=summary.sketch,
        histogram=summary.histogram,
        quantiles=quantiles,
    )
