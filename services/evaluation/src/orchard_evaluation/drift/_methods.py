"""The drift statistics, on weighted samples and counts, computed as Evidently 0.7 does.

Each function names the Evidently (``evidently.legacy.calculations.stattests``) code it follows.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, TypeVar

import numpy as np
from scipy import stats
from scipy.spatial import distance

from orchard_evaluation.drift._summaries import FloatArray, NumericView

K = TypeVar("K", bound=Hashable)

# Evidently's numeric binning switches from value counts to Sturges bins above this many
# distinct reference values (utils.get_binned_data).
BINNING_DISTINCT_LIMIT: Final = 20
# scipy's ks_2samp computes the exact p-value up to this sample size, else the asymptotic one.
KS_EXACT_MAX_N: Final = 10_000

# scipy's own exact two-sample KS distribution, so p-values match ks_2samp's; it is private,
# hence the fallback to the asymptotic distribution should a scipy release move it.
_exact_ks: Callable[..., tuple[bool, float, float]] | None = getattr(
    importlib.import_module("scipy.stats._stats_py"), "_attempt_exact_2kssamp", None
)


def wasserstein_norm(reference: NumericView, current: NumericView) -> float:
    """W1 of the samples over the reference std, floored at 0.001 (wasserstein_distance_norm)."""
    ref_values, ref_weights = reference.sample()
    cur_values, cur_weights = current.sample()
    norm = max(reference.std or 0.0, 0.001)
    w1 = stats.wasserstein_distance(ref_values, cur_values, ref_weights, cur_weights)
    return float(w1) / norm


def ks_statistic(reference: NumericView, current: NumericView) -> float:
    """Largest gap between the two (weighted) empirical CDFs, as ks_2samp measures it."""
    ref_values, ref_weights = reference.sample()
    cur_values, cur_weights = current.sample()
    points = np.concatenate([ref_values, cur_values])
    return float(
        np.abs(
            _ecdf(ref_values, ref_weights, points) - _ecdf(cur_values, cur_weights, points)
        ).max()
    )


def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """Two-sided p-value of a KS statistic for samples of ``n1`` and ``n2`` (ks_2samp, 'auto')."""
    if max(n1, n2) <= KS_EXACT_MAX_N and _exact_ks is not None:
        with np.errstate(all="ignore"):
            success, _, p_value = _exact_ks(n1, n2, math.gcd(n1, n2), statistic, "two-sided")
        if success:
            return float(np.clip(p_value, 0.0, 1.0))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0.0, 1.0))


def chisquare_p_value(reference: Mapping[K, float], current: Mapping[K, float]) -> float:
    """Chi-square goodness of fit of current counts to reference shares (chisquare_stattest)."""
    keys = list(reference.keys() | current.keys())
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    expected = np.array([reference.get(k, 0.0) for k in keys]) * (cur_total / ref_total)
    observed = np.array([current.get(k, 0.0) for k in keys])
    if len(keys) < 2:
        return 1.0
    if np.any(expected == 0):  # a value unseen in the reference: infinite statistic
        return 0.0
    statistic = float(np.sum(np.square(observed - expected) / expected))
    return float(stats.chi2.sf(statistic, len(keys) - 1))


def z_p_value(reference: Mapping[Any, float], current: Mapping[Any, float]) -> float:
    """Two-proportion Z test of "not the smallest value" (z_stattest)."""
    if len(reference) == 1 and reference.keys() == current.keys():
        return 1.0
    first = sorted(reference.keys() | current.keys())[0]
    n1, n2 = sum(reference.values()), sum(current.values())
    x1, x2 = n1 - reference.get(first, 0.0), n2 - current.get(first, 0.0)
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / spread
    return float(2 * (1 - stats.norm.cdf(abs(z))))


def jensenshannon(ref_shares: FloatArray, cur_shares: FloatArray) -> float:
    """Jensen-Shannon distance, natural log (jensenshannon; scipy's distance)."""
    return float(distance.jensenshannon(ref_shares, cur_shares))


def psi(ref_shares: FloatArray, cur_shares: FloatArray) -> float:
    """Population stability index after Evidently's zero filling (psi)."""
    ref, cur = _fill_zeroes(ref_shares), _fill_zeroes(cur_shares)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def shares_of_counts(
    reference: Mapping[K, float], current: Mapping[K, float]
) -> tuple[FloatArray, FloatArray]:
    """Shares of each value seen on either side (utils.get_binned_data, categorical branch)."""
    keys = list(reference.keys() | current.keys())
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    return (
        np.array([reference.get(k, 0.0) / ref_total for k in keys]),
        np.array([current.get(k, 0.0) / cur_total for k in keys]),
    )


def numeric_shares(reference: NumericView, current: NumericView) -> tuple[FloatArray, FloatArray]:
    """Evidently's numeric binning: value shares up to 20 distinct reference values, else
    Sturges bins over both samples' range (utils.get_binned_data)."""
    if reference.distinct is not None and len(reference.distinct) <= BINNING_DISTINCT_LIMIT:
        return shares_of_counts(reference.value_counts(), current.value_counts())
    edges = sturges_edges(
        min(_bound(reference.min), _bound(current.min)),
        max(_bound(reference.max), _bound(current.max)),
        reference.count + current.count,
    )
    shares = []
    for view in (reference, current):
        values, weights = view.sample()
        # Sketch values are float32: the extremes may round just outside the float64 range.
        inside = np.clip(values, edges[0], edges[-1])
        shares.append(np.histogram(inside, edges, weights=weights)[0] / view.count)
    return shares[0], shares[1]


def sturges_edges(low: float, high: float, n: int) -> FloatArray:
    """``np.histogram_bin_edges(data, "sturges")`` for data of size ``n`` spanning [low, high]."""
    spread = high - low
    edges: FloatArray
    if spread == 0:
        edges = np.linspace(low - 0.5, high + 0.5, 2)
    else:
        width = spread / (np.log2(n) + 1.0)
        edges = np.linspace(low, high, int(np.ceil(spread / width)) + 1)
    return edges


def _ecdf(values: FloatArray, weights: FloatArray, points: FloatArray) -> FloatArray:
    cumulative: FloatArray = np.concatenate([[0.0], np.cumsum(weights)])
    result: FloatArray = cumulative[np.searchsorted(values, points, side="right")] / cumulative[-1]
    return result


def _fill_zeroes(shares: FloatArray) -> FloatArray:
    filled = shares.astype(np.float64, copy=True)
    smallest = filled[filled != 0].min()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def _bound(value: float | None) -> float:
    if value is None:
        raise ValueError("numeric column has values but no min or max")
    return value
