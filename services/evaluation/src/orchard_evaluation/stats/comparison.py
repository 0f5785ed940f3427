"""Candidate-vs-baseline comparison of a proportion or a mean, fixed-horizon and always-valid.

Each comparison reports the difference ``candidate - baseline`` with two kinds of inference:

* fixed-horizon (valid for one look at a sample size fixed in advance): the Farrington-Manning
  score test and its inverted interval for proportions, Welch's t-test and interval for means;
* always-valid (valid however often the service looks, and at whatever look it stops): the
  normal-mixture SPRT p-value of Johari et al. 2017 and the matching confidence sequence of
  Waudby-Smith et al. 2023 (see ``sequential``). For proportions the standardisation uses the
  same restricted score variance, so both kinds agree on how each arm's rate is estimated.

Both always-valid outputs come from one mixture martingale: the sequence excludes 0 exactly
when the always-valid p-value is at most ``alpha``. They are asymptotic (normal approximation
with estimated variance), like every method that needs only per-arm summaries: their guarantee
holds after a burn-in, which ``canary_verdict``'s ``min_samples`` provides. Simulated with 50
looks (tests/stats), false-alarm rates stayed at 0.013-0.046 for alpha = 0.05. Known weak
spots: means of heavy-tailed metrics in a small arm (lognormal sigma=1.5, 10% canary, after 100
per arm: ~0.09), and rare events in a small arm at small alpha (1% rate, 10% canary from 10
requests, alpha = 0.01: ~0.017). For latency prefer the exceedance proportions of ``quantiles``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from orchard_evaluation.stats._json import finite
from orchard_evaluation.stats._score import invert, score_z
from orchard_evaluation.stats.sequential import (
    always_valid_p_value,
    half_width,
    mixture_eta,
)
from orchard_evaluation.stats.summaries import MeanSummary, ProportionSummary

__all__ = ["DEFAULT_PLANNED_N", "Comparison", "compare_means", "compare_proportions"]

DEFAULT_PLANNED_N = 1000
"""Total sample size where confidence sequences are tightest; they widen slowly past it."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The difference ``candidate - baseline`` of one metric with its inference.

    ``ci`` and ``p_value`` are fixed-horizon; ``confidence_sequence`` and
    ``always_valid_p_value`` stay valid under continuous monitoring.
    """

    kind: str
    method: str
    baseline_n: int
    candidate_n: int
    baseline_estimate: float
    candidate_estimate: float
    difference: float
    relative_difference: float | None
    alpha: float
    statistic: float
    p_value: float
    ci: tuple[float, float]
    always_valid_p_value: float
    confidence_sequence: tuple[float, float]
    planned_n: int

    @property
    def significant(self) -> bool:
        """Whether the always-valid test rejects "no difference" at ``alpha``."""
        return self.always_valid_p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (None where a number is undefined)."""
        return {
            "metric": self.kind,
            "method": self.method,
            "alpha": self.alpha,
            "sample_sizes": {"baseline": self.baseline_n, "candidate": self.candidate_n},
            "baseline": finite(self.baseline_estimate),
            "candidate": finite(self.candidate_estimate),
            "difference": finite(self.difference),
            "relative_difference": finite(self.relative_difference),
            "fixed_horizon": {
                "statistic": finite(self.statistic),
                "p_value": finite(self.p_value),
                "ci_low": finite(self.ci[0]),
                "ci_high": finite(self.ci[1]),
                "significant": self.p_value <= self.alpha,
            },
            "always_valid": {
                "p_value": finite(self.always_valid_p_value),
                "cs_low": finite(self.confidence_sequence[0]),
                "cs_high": finite(self.confidence_sequence[1]),
                "significant": self.significant,
                "planned_n": self.planned_n,
            },
        }


def _check(alpha: float, planned_n: int, baseline_n: int, candidate_n: int, least: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if planned_n < 1:
        raise ValueError(f"planned_n must be >= 1, got {planned_n}")
    for arm, n in (("baseline", baseline_n), ("candidate", candidate_n)):
        if n < least:
            raise ValueError(f"the {arm} arm has {n} observations; at least {least} are needed")


def _relative(difference: float, baseline: float) -> float | None:
    return difference / baseline if baseline != 0 else None


def compare_proportions(
    baseline: ProportionSummary,
    candidate: ProportionSummary,
    *,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_N,
) -> Comparison:
    """Compare two rates (error rate, accuracy, conversion).

    Fixed horizon: Farrington & Manning 1990 score test (at 0 it is the pooled two-proportion
    z-test) and its inverted interval. Always valid: mixture SPRT (Johari et al. 2017) on the
    same score statistic, inverted into a confidence sequence (Waudby-Smith et al. 2023).

    Raises:
        ValueError: an arm is empty, or ``alpha``/``planned_n`` is out of range.
    """
    _check(alpha, planned_n, baseline.n, candidate.n, least=1)
    counts = (baseline.successes, baseline.n, candidate.successes, candidate.n)
    p_b, p_c = baseline.successes / baseline.n, candidate.successes / candidate.n
    difference = p_c - p_b

    z0 = float(score_z(*counts, 0.0))
    ci = invert(counts, difference, float(sps.norm.ppf(1.0 - alpha / 2.0)))
    eta = mixture_eta(baseline.n + candidate.n, planned_n)
    # The sequence keeps the differences whose mixture statistic stays below 1/alpha, i.e.
    # whose |z| stays below the boundary's radius in standard errors.
    cs = invert(counts, difference, float(half_width(1.0, eta, alpha)))
    return Comparison(
        kind="proportion",
        method="score (Farrington-Manning) test; normal-mixture SPRT confidence sequence",
        baseline_n=baseline.n,
        candidate_n=candidate.n,
        baseline_estimate=p_b,
        candidate_estimate=p_c,
        difference=difference,
        relative_difference=_relative(difference, p_b),
        alpha=alpha,
        statistic=z0,
        p_value=float(2.0 * sps.norm.sf(abs(z0))),
        ci=ci,
        always_valid_p_value=float(always_valid_p_value(z0, eta)),
        confidence_sequence=cs,
        planned_n=planned_n,
    )


def compare_means(
    baseline: MeanSummary,
    candidate: MeanSummary,
    *,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_N,
) -> Comparison:
    """Compare two means (latency, a business ``value``).

    Fixed horizon: Welch's t-test and interval (Welch-Satterthwaite degrees of freedom).
    Always valid: mixture SPRT p-value (Johari et al. 2017) and the Gaussian-mixture asymptotic
    confidence sequence (Waudby-Smith et al. 2023) on ``difference / standard error``.

    Raises:
        ValueError: an arm has fewer than 2 observations, or ``alpha``/``planned_n`` is out
            of range.
    """
    _check(alpha, planned_n, baseline.n, candidate.n, least=2)
    difference = candidate.mean - baseline.mean
    var_b, var_c = baseline.variance / baseline.n, candidate.variance / candidate.n
    se = math.sqrt(var_b + var_c)
    if se > 0:
        statistic = difference / se
        df = (var_b + var_c) ** 2 / (var_b**2 / (baseline.n - 1) + var_c**2 / (candidate.n - 1))
        p_value = float(2.0 * sps.t.sf(abs(statistic), df))
        t_crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    else:  # both arms constant: the difference is known exactly
        statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        p_value = 1.0 if difference == 0 else 0.0
        t_crit = 0.0
    eta = mixture_eta(baseline.n + candidate.n, planned_n)
    radius = float(half_width(se, eta, alpha))
    return Comparison(
        kind="mean",
        method="Welch t-test; normal-mixture SPRT confidence sequence",
        baseline_n=baseline.n,
        candidate_n=candidate.n,
        baseline_estimate=baseline.mean,
        candidate_estimate=candidate.mean,
        difference=difference,
        relative_difference=_relative(difference, baseline.mean),
        alpha=alpha,
        statistic=statistic,
        p_value=p_value,
        ci=(difference - t_crit * se, difference + t_crit * se),
        always_valid_p_value=float(always_valid_p_value(np.float64(statistic), eta)),
        confidence_sequence=(difference - radius, difference + radius),
        planned_n=planned_n,
    )
