"""Sample-ratio mismatch: is the traffic split what the route table configured?

Fixed horizon: Pearson's chi-square goodness-of-fit test. Always valid: the Dirichlet-
multinomial Bayes factor of Lindon & Malek 2022 ("Anytime-valid inference for multinomial
count data"). Under the configured weights ``w`` it is a nonnegative martingale with mean 1 as
units arrive, so ``min(1, 1/BF)`` is a p-value valid at any stopping time (Ville's inequality);
it depends on the counts alone, which is all the service stores.

The Dirichlet prior is centred on ``w`` with ``concentration`` pseudo-units
(``Dirichlet(concentration * w)``): larger values look for smaller imbalances and need more
traffic to find large ones. The default 1000 targets imbalances of a couple of percentage
points, the size that usually signals a broken assignment or logging path.

Arms configured with weight 0 take no part in the tests; any unit observed in one is a
mismatch outright (its probability under the configuration is 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from orchard_evaluation.stats._json import finite
from orchard_evaluation.stats.verdict import Verdict

__all__ = ["SrmResult", "srm_check", "srm_log_bayes_factor"]


@dataclass(frozen=True, slots=True)
class SrmResult:
    """The observed split against the configured one, with both kinds of p-value."""

    observed: Mapping[str, int]
    expected_weights: Mapping[str, float]
    total: int
    statistic: float
    degrees_of_freedom: int
    p_value: float
    always_valid_p_value: float
    alpha: float
    min_total: int

    @property
    def mismatch(self) -> bool:
        """Whether the always-valid test finds a mismatch at ``alpha``."""
        return self.always_valid_p_value <= self.alpha

    @property
    def verdict(self) -> Verdict:
        """FAIL on a mismatch; PASS with none once ``min_total`` units were seen."""
        if self.mismatch:
            return Verdict.FAIL
        return Verdict.PASS if self.total >= self.min_total else Verdict.INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (statistic None when infinite)."""
        expected = {arm: w * self.total for arm, w in self.expected_weights.items()}
        return {
            "verdict": self.verdict.value,
            "mismatch": self.mismatch,
            "method": "chi-square goodness of fit; Dirichlet-multinomial sequential test",
            "statistic": finite(self.statistic),
            "degrees_of_freedom": self.degrees_of_freedom,
            "p_value": finite(self.p_value),
            "always_valid_p_value": finite(self.always_valid_p_value),
            "alpha": self.alpha,
            "threshold": self.alpha,
            "min_total": self.min_total,
            "total": self.total,
            "sample_sizes": dict(self.observed),
            "expected_weights": dict(self.expected_weights),
            "expected_counts": expected,
        }


def srm_log_bayes_factor(
    counts: np.typing.ArrayLike, weights: np.typing.ArrayLike, concentration: float
) -> np.typing.NDArray[np.float64]:
    """log BF of Dirichlet(concentration * w)-multinomial against multinomial(w).

    ``counts`` may carry leading batch axes (arms on the last axis); ``weights`` must be
    positive and sum to 1. Lindon & Malek 2022.
    """
    x = np.asarray(counts, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    prior = concentration * w
    log_marginal = (
        special.gammaln(concentration)
        - special.gammaln(concentration + x.sum(axis=-1))
        + (special.gammaln(prior + x) - special.gammaln(prior)).sum(axis=-1)
    )
    return np.asarray(log_marginal - (x * np.log(w)).sum(axis=-1), dtype=np.float64)


def _validated(
    observed: Mapping[str, int], expected_weights: Mapping[str, float]
) -> tuple[dict[str, int], dict[str, float]]:
    if not expected_weights:
        raise ValueError("expected_weights is empty: configure at least one arm")
    unknown = sorted(set(observed) - set(expected_weights))
    if unknown:
        raise ValueError(f"observed arms not in expected_weights: {unknown}")
    weights: dict[str, float] = {}
    for arm, weight in expected_weights.items():
        value = float(weight)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of arm {arm!r} must be finite and >= 0, got {weight!r}")
        weights[arm] = value
    total_weight = sum(weights.values())
    if total_weight <= 0:
        raise ValueError("expected_weights are all zero: at least one arm needs traffic")
    counts: dict[str, int] = {}
    for arm in weights:
        count = observed.get(arm, 0)
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise ValueError(f"count of arm {arm!r} must be an integer >= 0, got {count!r}")
        counts[arm] = int(count)
    return counts, {arm: w / total_weight for arm, w in weights.items()}


def srm_check(
    observed: Mapping[str, int],
    expected_weights: Mapping[str, float],
    *,
    alpha: float = 0.001,
    concentration: float = 1000.0,
    min_total: int = 100,
) -> SrmResult:
    """Check an observed traffic split (units per arm) against the configured weights.

    Weights are normalised to sum to 1; arms missing from ``observed`` count 0 units.

    Raises:
        ValueError: no arms, an observed arm that is not configured, a negative or
            non-integer count, a negative or non-finite weight, all weights zero, or
            ``alpha``/``concentration`` out of range.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not concentration > 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    counts, weights = _validated(observed, expected_weights)
    total = sum(counts.values())
    live = [arm for arm in weights if weights[arm] > 0]
    stray = sum(counts[arm] for arm in weights if weights[arm] == 0)
    x = np.array([counts[arm] for arm in live], dtype=np.float64)
    w = np.array([weights[arm] for arm in live])
    if stray:  # traffic on an arm configured off: impossible under the configuration
        statistic, p_value, av_p_value = math.inf, 0.0, 0.0
    elif len(live) < 2 or total == 0:  # nothing that could be unbalanced yet
        statistic, p_value, av_p_value = 0.0, 1.0, 1.0
    else:
        expected = w * total
        statistic = float(((x - expected) ** 2 / expected).sum())
        p_value = float(stats.chi2.sf(statistic, len(live) - 1))
        log_bf = float(srm_log_bayes_factor(x, w, concentration))
        av_p_value = float(min(1.0, math.exp(-log_bf))) if log_bf > -700 else 1.0
    return SrmResult(
        observed=counts,
        expected_weights=weights,
        total=total,
        statistic=statistic,
        degrees_of_freedom=max(len(live) - 1, 0),
        p_value=p_value,
        always_valid_p_value=av_p_value,
        alpha=alpha,
        min_total=min_total,
    )
