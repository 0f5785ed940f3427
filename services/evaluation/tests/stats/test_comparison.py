"""Fixed-horizon parts against scipy/statsmodels; always-valid parts against their definition."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import optimize, stats

from orchard_evaluation.stats import (
    MeanSummary,
    ProportionSummary,
    compare_means,
    compare_proportions,
)
from orchard_evaluation.stats._score import restricted_variance, score_z
from orchard_evaluation.stats.sequential import always_valid_p_value, log_mixture_lr, mixture_eta

COUNTS = [(50, 1000, 80, 1000), (30, 600, 10, 100), (5, 100, 0, 50), (400, 500, 380, 500)]


@pytest.mark.parametrize(("xb", "nb", "xc", "nc"), COUNTS)
def test_proportion_test_matches_pooled_z_test_and_chi_square(
    xb: int, nb: int, xc: int, nc: int
) -> None:
    result = compare_proportions(ProportionSummary(xb, nb), ProportionSummary(xc, nc))
    chi2, p_value, _, _ = stats.chi2_contingency([[xc, nc - xc], [xb, nb - xb]], correction=False)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    z, p = proportion.proportions_ztest([xc, xb], [nc, nb])
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize(("xb", "nb", "xc", "nc"), COUNTS)
@pytest.mark.parametrize("delta", [-0.05, 0.0137, 0.2])
def test_restricted_variance_is_the_constrained_mle(
    xb: int, nb: int, xc: int, nc: int, delta: float
) -> None:
    def negative_log_likelihood(p_b: float) -> float:
        p_c = p_b + delta
        terms = [(xb, p_b), (nb - xb, 1 - p_b), (xc, p_c), (nc - xc, 1 - p_c)]
        return -sum(k * math.log(p) for k, p in terms if k)

    eps = 1e-12
    fit = optimize.minimize_scalar(
        negative_log_likelihood,
        bounds=(max(0.0, -delta) + eps, min(1.0, 1.0 - delta) - eps),
        method="bounded",
        options={"xatol": 1e-12},
    )
    p_b, p_c = fit.x, fit.x + delta
    expected = p_b * (1 - p_b) / nb + p_c * (1 - p_c) / nc
    assert float(restricted_variance(xb, nb, xc, nc, delta)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("xb", "nb", "xc", "nc"), COUNTS)
def test_proportion_intervals_are_inverted_tests(xb: int, nb: int, xc: int, nc: int) -> None:
    alpha = 0.05
    result = compare_proportions(ProportionSummary(xb, nb), ProportionSummary(xc, nc), alpha=alpha)
    eta = mixture_eta(nb + nc, result.planned_n)

    def inside_ci(d: float) -> bool:
        return abs(float(score_z(xb, nb, xc, nc, d))) < float(stats.norm.ppf(0.975))

    def inside_cs(d: float) -> bool:
        return float(log_mixture_lr(score_z(xb, nb, xc, nc, d), eta)) < math.log(1 / alpha)

    checks: list[tuple[float, float, Callable[[float], bool]]] = [
        (*result.ci, inside_ci),
        (*result.confidence_sequence, inside_cs),
    ]
    for low, high, inside in checks:
        assert low <= result.difference <= high
        assert inside(low + 1e-9)
        assert inside(high - 1e-9)
        assert not inside(low - 1e-6) or low <= -1 + 1e-6
        assert not inside(high + 1e-6) or high >= 1 - 1e-6
    # The always-valid sequence pays for continuous monitoring: it contains the fixed CI.
    assert result.confidence_sequence[0] < result.ci[0]
    assert result.ci[1] < result.confidence_sequence[1]


def test_always_valid_p_value_and_sequence_agree() -> None:
    for xc in range(40, 121, 4):
        result = compare_proportions(ProportionSummary(50, 1000), ProportionSummary(xc, 1000))
        low, high = result.confidence_sequence
        assert (low > 0 or high < 0) == (result.always_valid_p_value <= result.alpha)
        kernel = always_valid_p_value(result.statistic, mixture_eta(2000, result.planned_n))
        assert result.always_valid_p_value == pytest.approx(float(kernel))
        assert result.always_valid_p_value >= result.p_value  # the price of peeking


def test_means_match_scipy_welch() -> None:
    rng = np.random.default_rng(7)
    baseline, candidate = rng.lognormal(4.0, 0.5, 400), rng.lognormal(4.1, 0.6, 150)
    result = compare_means(MeanSummary.from_values(baseline), MeanSummary.from_values(candidate))
    welch = stats.ttest_ind(candidate, baseline, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert result.statistic == pytest.approx(welch.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert result.ci == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert result.difference == pytest.approx(candidate.mean() - baseline.mean())
    low, high = result.confidence_sequence
    assert (low > 0 or high < 0) == (result.always_valid_p_value <= result.alpha)
    assert low < ci.low
    assert ci.high < high


def test_degenerate_inputs_give_json_safe_results() -> None:
    zeros = compare_proportions(ProportionSummary(0, 200), ProportionSummary(0, 200))
    assert zeros.p_value == 1.0
    assert zeros.always_valid_p_value == 1.0
    assert zeros.confidence_sequence[0] < 0 < zeros.confidence_sequence[1]
    assert zeros.to_dict()["relative_difference"] is None
    constant = compare_means(MeanSummary(10, 5.0, 0.0), MeanSummary(10, 6.0, 0.0))
    assert constant.p_value == 0.0
    assert constant.always_valid_p_value == 0.0
    payload = constant.to_dict()
    assert payload["fixed_horizon"]["statistic"] is None  # infinite, reported as null
    for result in (zeros, constant):
        json.dumps(result.to_dict(), allow_nan=False)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="the baseline arm has 0 observations"):
        compare_proportions(ProportionSummary(0, 0), ProportionSummary(1, 10))
    with pytest.raises(ValueError, match="the candidate arm has 1 observations; at least 2"):
        compare_means(MeanSummary(5, 1.0, 1.0), MeanSummary(1, 1.0, 0.0))
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        compare_proportions(ProportionSummary(1, 10), ProportionSummary(1, 10), alpha=1.5)
    with pytest.raises(ValueError, match="planned_n must be >= 1"):
        compare_means(MeanSummary(5, 1.0, 1.0), MeanSummary(5, 1.0, 1.0), planned_n=0)
