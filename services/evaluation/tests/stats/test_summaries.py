"""Mergeable summaries: building, merging and rejecting bad counts."""

from __future__ import annotations

import numpy as np
import pytest

from orchard_evaluation.stats import MeanSummary, ProportionSummary


def test_proportion_from_values_and_merge_match_the_concatenated_window() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.random(300) < 0.1, rng.random(500) < 0.1
    merged = ProportionSummary.from_values(first).merge(ProportionSummary.from_values(second))
    assert merged == ProportionSummary.from_values(np.concatenate([first, second]))
    assert merged.rate == pytest.approx(np.concatenate([first, second]).mean())
    assert ProportionSummary(0, 0).rate is None


def test_mean_merge_matches_numpy_on_the_concatenated_window() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.lognormal(3.0, 1.0, size) for size in (1, 7, 250, 1000)]
    merged = MeanSummary(0, 0.0, 0.0)
    for part in parts:
        merged = merged.merge(MeanSummary.from_values(part))
    everything = np.concatenate(parts)
    assert merged.n == everything.size
    assert merged.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(everything.var(ddof=1), rel=1e-10)


def test_mean_from_moments_matches_from_values() -> None:
    values = np.array([120.0, 95.5, 130.25, 101.0, 99.0])
    from_moments = MeanSummary.from_moments(values.size, values.sum(), (values**2).sum())
    expected = MeanSummary.from_values(values)
    assert from_moments.mean == pytest.approx(expected.mean)
    assert from_moments.variance == pytest.approx(expected.variance)
    assert MeanSummary.from_moments(1, 5.0, 25.0) == MeanSummary(1, 5.0, 0.0)


@pytest.mark.parametrize(
    ("successes", "n", "message"),
    [
        (-1, 10, "successes must be >= 0"),
        (1, -10, "n must be >= 0"),
        (11, 10, r"successes \(11\) cannot exceed n \(10\)"),
        (1.5, 10, "successes must be an integer count"),
        (True, 10, "successes must be an integer count"),
    ],
)
def test_bad_proportion_counts_are_rejected(successes: object, n: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProportionSummary(successes, n)  # type: ignore[arg-type]


def test_bad_mean_summaries_are_rejected() -> None:
    with pytest.raises(ValueError, match="variance must be >= 0"):
        MeanSummary(10, 1.0, -1.0)
    with pytest.raises(ValueError, match="must be finite"):
        MeanSummary(10, float("nan"), 1.0)
    with pytest.raises(ValueError, match="variance must be 0 with fewer than 2"):
        MeanSummary(1, 1.0, 2.0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        MeanSummary(-1, 0.0, 0.0)
    with pytest.raises(ValueError, match="values must be finite"):
        MeanSummary.from_values([1.0, float("inf")])
    with pytest.raises(ValueError, match="0/1 or booleans"):
        ProportionSummary.from_values([0, 1, 2])
