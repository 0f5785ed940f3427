"""Mergeable per-arm summaries: what the service computes from its database for each window.

A verdict over any time range is a merge of stored window summaries, never a rescan of raw
rows. Means are kept as ``(n, mean, variance)`` and merged with the parallel update of Chan,
Golub & LeVeque (1979), which stays accurate where ``sum`` / ``sum of squares`` cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MeanSummary", "ProportionSummary"]


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


@dataclass(frozen=True, slots=True)
class ProportionSummary:
    """Successes out of ``n`` trials for one arm (errors, correct predictions, conversions).

    Raises:
        ValueError: a count is negative or not an integer, or ``successes > n``.
    """

    successes: int
    n: int

    def __post_init__(self) -> None:
        successes = _count("successes", self.successes)
        n = _count("n", self.n)
        if successes > n:
            raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
        object.__setattr__(self, "successes", successes)
        object.__setattr__(self, "n", n)

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ProportionSummary:
        """Summarise an array of 0/1 (or boolean) outcomes."""
        array = np.asarray(values).ravel()
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError("proportion values must all be 0/1 or booleans")
        return cls(successes=int(np.count_nonzero(array)), n=int(array.size))

    def merge(self, other: ProportionSummary) -> ProportionSummary:
        """The summary of both windows together."""
        return ProportionSummary(self.successes + other.successes, self.n + other.n)

    @property
    def rate(self) -> float | None:
        """``successes / n``, or None for an empty arm."""
        return self.successes / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class MeanSummary:
    """Count, mean and sample variance (``ddof=1``; 0 when ``n < 2``) of a numeric metric.

    Raises:
        ValueError: ``n`` negative, a non-finite mean, a negative variance, or a non-zero
            mean/variance for an empty arm.
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        n = _count("n", self.n)
        mean, variance = float(self.mean), float(self.variance)
        if not math.isfinite(mean) or not math.isfinite(variance):
            raise ValueError(f"mean and variance must be finite, got {mean!r}, {variance!r}")
        if variance < 0:
            raise ValueError(f"variance must be >= 0, got {variance}")
        if n < 2 and variance != 0:
            raise ValueError(f"variance must be 0 with fewer than 2 observations (n={n})")
        if n == 0 and mean != 0:
            raise ValueError("an empty summary must have mean 0")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "variance", variance)

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> MeanSummary:
        """Summarise an array of observations (NaN or infinite values are rejected)."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(array).all():
            raise ValueError("values must be finite")
        if array.size == 0:
            return cls(0, 0.0, 0.0)
        variance = float(array.var(ddof=1)) if array.size > 1 else 0.0
        return cls(int(array.size), float(array.mean()), variance)

    @classmethod
    def from_moments(cls, n: int, total: float, total_squares: float) -> MeanSummary:
        """Build from ``n``, ``sum(x)`` and ``sum(x**2)`` (e.g. SQL ``COUNT``/``SUM`` columns).

        Prefer ``(n, mean, variance)`` where the database can give it: the sum-of-squares form
        loses precision when the variance is small next to the mean.
        """
        n = _count("n", n)
        if n == 0:
            if total != 0 or total_squares != 0:
                raise ValueError("an empty summary must have total 0 and total_squares 0")
            return cls(0, 0.0, 0.0)
        if total_squares < 0:
            raise ValueError(f"total_squares must be >= 0, got {total_squares}")
        mean = total / n
        m2 = max(0.0, total_squares - n * mean * mean)  # clip rounding error below zero
        return cls(n, mean, m2 / (n - 1) if n > 1 else 0.0)

    def merge(self, other: MeanSummary) -> MeanSummary:
        """The summary of both windows together (Chan et al. parallel variance update)."""
        n = self.n + other.n
        if n == 0:
            return MeanSummary(0, 0.0, 0.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = (
            self.variance * max(self.n - 1, 0)
            + other.variance * max(other.n - 1, 0)
            + delta * delta * self.n * other.n / n
        )
        return MeanSummary(n, mean, m2 / (n - 1) if n > 1 else 0.0)
