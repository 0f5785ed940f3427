"""Latency quantiles per arm: fixed-horizon intervals, and the always-valid tail test's input.

Fixed horizon: the p50/p99 difference gets a percentile bootstrap interval (Efron & Tibshirani
1993). The bootstrap distribution of a sample quantile is known exactly: for the
``k = ceil(n q)``-th order statistic of a resample, ``P(q* <= x_(j)) = P(Binom(n, j/n) >= k)``
(Maritz & Jarrett 1978), so resampled quantiles are drawn from that law in ``O(n + B log n)``
instead of resampling ``B`` copies of the data.

Always valid: quantile estimates are not sums, so there is no martingale to mix over directly.
"The candidate's p99 is worse" is decided instead on the share of requests slower than a
threshold ``c``: ``p99_candidate > c`` exactly when more than 1% of its requests exceed ``c``.
``exceedance_summary`` turns each arm's latencies into a ``ProportionSummary`` that the
always-valid proportion comparison (and ``canary_verdict``) then judges. For validity ``c`` must
not depend on the data being tested: freeze it when the rollout starts (the baseline's p99 over
a window before it, or the latency SLO). A threshold re-estimated from the same window at every
look would make the baseline's exceedance count fixed by construction, not binomial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from orchard_evaluation.stats._json import finite
from orchard_evaluation.stats.summaries import ProportionSummary

__all__ = ["QuantileComparison", "compare_quantiles", "exceedance_summary"]


@dataclass(frozen=True, slots=True)
class QuantileComparison:
    """One quantile per arm, the difference ``candidate - baseline`` and bootstrap intervals."""

    quantile: float
    baseline_n: int
    candidate_n: int
    baseline_value: float
    candidate_value: float
    difference: float
    ci: tuple[float, float]
    baseline_ci: tuple[float, float]
    candidate_ci: tuple[float, float]
    alpha: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data. Fixed-horizon only: no verdict is drawn from it."""
        return {
            "quantile": self.quantile,
            "method": "exact percentile bootstrap of order statistics (fixed horizon)",
            "alpha": self.alpha,
            "resamples": self.resamples,
            "sample_sizes": {"baseline": self.baseline_n, "candidate": self.candidate_n},
            "baseline": finite(self.baseline_value),
            "candidate": finite(self.candidate_value),
            "difference": finite(self.difference),
            "ci_low": finite(self.ci[0]),
            "ci_high": finite(self.ci[1]),
            "baseline_ci": [finite(self.baseline_ci[0]), finite(self.baseline_ci[1])],
            "candidate_ci": [finite(self.candidate_ci[0]), finite(self.candidate_ci[1])],
        }


def _sorted_arm(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if array.size == 0:
        raise ValueError(f"the {name} arm has no latencies")
    if not np.isfinite(array).all():
        raise ValueError(f"the {name} arm has NaN or infinite latencies")
    return array


def _order_index(n: int, q: float) -> int:
    """0-based index of the sample q-quantile (numpy's ``inverted_cdf``: ``x_(ceil(n q))``)."""
    return max(math.ceil(n * q), 1) - 1


def bootstrap_quantiles(
    sorted_values: npt.NDArray[np.float64], q: float, resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Draws from the exact bootstrap distribution of the sample ``q``-quantile."""
    n = sorted_values.size
    k = _order_index(n, q) + 1
    # cdf[j-1] = P(k-th smallest resampled rank <= j) = P(Binom(n, j/n) >= k)
    cdf = sps.binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    cdf[-1] = 1.0
    ranks = np.searchsorted(cdf, rng.random(resamples), side="left")
    return sorted_values[np.minimum(ranks, n - 1)]


def compare_quantiles(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    quantiles: Sequence[float] = (0.5, 0.99),
    alpha: float = 0.05,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[QuantileComparison, ...]:
    """Per-arm quantiles (numpy ``inverted_cdf``) with percentile-bootstrap intervals.

    Fixed horizon only. Tail quantiles need data in the tail: with fewer than about
    ``10 / (1 - q)`` values per arm (1000 for p99) the p99 interval is not trustworthy.

    Raises:
        ValueError: an arm is empty or non-finite, a quantile is outside (0, 1), or
            ``alpha``/``resamples`` is out of range.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    arms = _sorted_arm("baseline", baseline), _sorted_arm("candidate", candidate)
    rng = np.random.default_rng(seed)
    tails = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    results = []
    for q in quantiles:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantiles must be in (0, 1), got {q}")
        values = [float(arm[_order_index(arm.size, q)]) for arm in arms]
        draws = [bootstrap_quantiles(arm, q, resamples, rng) for arm in arms]
        cis = [np.percentile(d, tails) for d in (*draws, draws[1] - draws[0])]
        results.append(
            QuantileComparison(
                quantile=q,
                baseline_n=int(arms[0].size),
                candidate_n=int(arms[1].size),
                baseline_value=values[0],
                candidate_value=values[1],
                difference=values[1] - values[0],
                ci=(float(cis[2][0]), float(cis[2][1])),
                baseline_ci=(float(cis[0][0]), float(cis[0][1])),
                candidate_ci=(float(cis[1][0]), float(cis[1][1])),
                alpha=alpha,
                resamples=resamples,
            )
        )
    return tuple(results)


def exceedance_summary(latencies: npt.ArrayLike, threshold: float) -> ProportionSummary:
    """How many latencies exceed ``threshold`` (strictly), as a mergeable proportion.

    Feed both arms' summaries to ``compare_proportions`` or ``canary_verdict`` (lower is
    better) for an always-valid test of "the candidate's tail above ``threshold`` is heavier".
    ``threshold`` must be fixed before the data it judges (see the module docstring).
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    array = np.asarray(latencies, dtype=np.float64).ravel()
    if np.isnan(array).any():
        raise ValueError("latencies must not be NaN")
    return ProportionSummary(successes=int(np.count_nonzero(array > threshold)), n=int(array.size))
