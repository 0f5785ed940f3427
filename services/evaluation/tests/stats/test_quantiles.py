"""Latency quantiles (fixed horizon) and the always-valid tail test built on exceedances."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from orchard_evaluation.stats import (
    Direction,
    Verdict,
    canary_verdict,
    compare_quantiles,
    exceedance_summary,
)
from orchard_evaluation.stats.quantiles import bootstrap_quantiles

FloatArray = np.typing.NDArray[np.float64]


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_exact_bootstrap_matches_brute_force_resampling(q: float) -> None:
    rng = np.random.default_rng(4)
    data = np.sort(np.round(rng.lognormal(3.0, 0.7, 300), 1))  # rounded: ties on purpose
    draws = 20_000
    exact = bootstrap_quantiles(data, q, draws, rng)
    resampled = rng.choice(data, size=(draws, data.size), replace=True)
    brute = np.quantile(resampled, q, axis=1, method="inverted_cdf")
    grid = np.unique(data)
    gap = (
        np.abs(
            np.searchsorted(np.sort(exact), grid, side="right")
            - np.searchsorted(np.sort(brute), grid, side="right")
        ).max()
        / draws
    )
    # Two-sample DKW bound at 99.9%: sqrt(log(2/0.001) / 2) * sqrt(2 / draws) ~ 0.019.
    assert gap < 0.02


def test_quantiles_and_difference_interval_agree_with_scipy_bootstrap() -> None:
    rng = np.random.default_rng(12)
    baseline, candidate = rng.lognormal(3.0, 0.5, 800), rng.lognormal(3.1, 0.5, 600)
    p50, p99 = compare_quantiles(baseline, candidate, seed=1)
    for result, q in ((p50, 0.5), (p99, 0.99)):
        assert result.baseline_value == np.quantile(baseline, q, method="inverted_cdf")
        assert result.candidate_value == np.quantile(candidate, q, method="inverted_cdf")
        assert result.ci[0] <= result.difference <= result.ci[1]
        assert result.baseline_ci[0] <= result.baseline_value <= result.baseline_ci[1]

    def median_difference(b: FloatArray, c: FloatArray, axis: int) -> FloatArray:
        median_c = np.quantile(c, 0.5, axis=axis, method="inverted_cdf")
        return np.asarray(median_c - np.quantile(b, 0.5, axis=axis, method="inverted_cdf"))

    reference = stats.bootstrap(
        (baseline, candidate),
        median_difference,
        method="percentile",
        n_resamples=4000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    width = reference.high - reference.low
    assert p50.ci[0] == pytest.approx(reference.low, abs=0.1 * width)
    assert p50.ci[1] == pytest.approx(reference.high, abs=0.1 * width)
    json.dumps(p99.to_dict(), allow_nan=False)


def test_quantile_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="the candidate arm has no latencies"):
        compare_quantiles([1.0, 2.0], [])
    with pytest.raises(ValueError, match="NaN or infinite"):
        compare_quantiles([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match=r"quantiles must be in \(0, 1\)"):
        compare_quantiles([1.0], [1.0], quantiles=(1.0,))
    with pytest.raises(ValueError, match="threshold must be finite"):
        exceedance_summary([1.0], float("nan"))


def test_exceedance_counts_strictly_slower_requests() -> None:
    summary = exceedance_summary([10.0, 20.0, 30.0, 30.0, 45.0], threshold=30.0)
    assert (summary.successes, summary.n) == (1, 5)


def test_p99_regression_fails_the_canary_and_no_change_does_not() -> None:
    """Threshold frozen from a pre-rollout window; candidate's tail above it doubles 1% -> 2%."""
    rng = np.random.default_rng(21)
    threshold = float(np.quantile(rng.lognormal(3.0, 0.5, 100_000), 0.99))
    baseline = rng.lognormal(3.0, 0.5, 45_000)
    slow = rng.lognormal(3.0, 0.5, 5_000)
    slow[rng.random(5_000) < 0.0101] = threshold * 1.5  # ~1% more requests in the tail
    same = rng.lognormal(3.0, 0.5, 5_000)

    def verdict(candidate: FloatArray) -> Verdict:
        return canary_verdict(
            "latency_p99_tail",
            exceedance_summary(baseline, threshold),
            exceedance_summary(candidate, threshold),
            direction=Direction.LOWER_IS_BETTER,
            margin=0.0,
        ).verdict

    assert verdict(slow) is Verdict.FAIL
    assert verdict(same) is not Verdict.FAIL
