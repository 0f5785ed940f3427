"""Canary verdict semantics and the combiner."""

from __future__ import annotations

import json

import pytest

from orchard_evaluation.stats import (
    CanaryVerdict,
    Direction,
    MeanSummary,
    ProportionSummary,
    Verdict,
    canary_verdict,
    combine_verdicts,
)

LOWER = Direction.LOWER_IS_BETTER
HIGHER = Direction.HIGHER_IS_BETTER


def errors(rate: float, n: int) -> ProportionSummary:
    return ProportionSummary(round(rate * n), n)


def test_error_rate_clearly_worse_fails() -> None:
    result = canary_verdict("error_rate", errors(0.05, 5000), errors(0.10, 5000), direction=LOWER)
    assert result.verdict is Verdict.FAIL
    assert result.comparison is not None
    assert result.comparison.confidence_sequence[0] > 0


def test_error_rate_within_margin_passes_as_non_inferior() -> None:
    result = canary_verdict(
        "error_rate", errors(0.05, 20_000), errors(0.05, 20_000), direction=LOWER, margin=0.01
    )
    assert result.verdict is Verdict.PASS
    assert result.comparison is not None
    assert result.comparison.confidence_sequence[1] < 0.01


def test_undecided_evidence_is_inconclusive() -> None:
    result = canary_verdict(
        "error_rate", errors(0.05, 500), errors(0.06, 500), direction=LOWER, margin=0.01
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "contains the margin" in result.reason


def test_too_few_samples_is_inconclusive_never_pass_even_when_perfect() -> None:
    for baseline_n, candidate_n in ((1000, 0), (1000, 99), (0, 0)):
        result = canary_verdict(
            "error_rate",
            ProportionSummary(50, baseline_n) if baseline_n else ProportionSummary(0, 0),
            ProportionSummary(0, candidate_n),
            direction=LOWER,
            margin=0.5,
            min_samples=100,
        )
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.comparison is None
        assert "too few samples" in result.reason
        json.dumps(result.to_dict(), allow_nan=False)


def test_higher_is_better_accuracy() -> None:
    worse = canary_verdict(
        "accuracy", errors(0.90, 3000), errors(0.80, 3000), direction=HIGHER, margin=0.02
    )
    same = canary_verdict(
        "accuracy", errors(0.90, 20_000), errors(0.90, 20_000), direction=HIGHER, margin=0.02
    )
    better = canary_verdict(
        "accuracy", errors(0.80, 3000), errors(0.90, 3000), direction=HIGHER, margin=0.0
    )
    assert (worse.verdict, same.verdict, better.verdict) == (
        Verdict.FAIL,
        Verdict.PASS,
        Verdict.PASS,
    )
    assert worse.threshold == -0.02


def test_mean_latency_verdicts() -> None:
    baseline = MeanSummary(5000, 120.0, 40.0**2)
    slower = canary_verdict(
        "latency_mean_ms", baseline, MeanSummary(800, 140.0, 45.0**2), direction=LOWER, margin=5
    )
    same = canary_verdict(
        "latency_mean_ms", baseline, MeanSummary(5000, 120.5, 40.0**2), direction=LOWER, margin=5
    )
    assert slower.verdict is Verdict.FAIL
    assert same.verdict is Verdict.PASS
    payload = slower.to_dict()
    assert payload["statistic"] == pytest.approx(20.0)
    assert payload["threshold"] == 5.0
    assert payload["sample_sizes"] == {
        "baseline": 5000,
        "candidate": 800,
    }
    json.dumps(payload, allow_nan=False)


def _signal(verdict: Verdict, alpha: float = 0.0125) -> CanaryVerdict:
    return CanaryVerdict(
        metric="m",
        verdict=verdict,
        reason="",
        direction=LOWER,
        margin=0.0,
        alpha=alpha,
        min_samples=100,
        baseline_n=100,
        candidate_n=100,
        comparison=None,
    )


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE], Verdict.FAIL),
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE),
        ([], Verdict.INCONCLUSIVE),
    ],
)
def test_combiner(verdicts: list[Verdict], expected: Verdict) -> None:
    overall = combine_verdicts(_signal(v) for v in verdicts)
    assert overall.verdict is expected
    assert overall.family_alpha == pytest.approx(0.0125 * len(verdicts))
    payload = overall.to_dict()
    assert payload["verdict"] == expected.value
    assert len(payload["signals"]) == len(verdicts)
    json.dumps(payload, allow_nan=False)


def test_bad_verdict_inputs() -> None:
    proportion, mean = ProportionSummary(1, 100), MeanSummary(100, 1.0, 1.0)
    with pytest.raises(ValueError, match="must both be ProportionSummary or MeanSummary"):
        canary_verdict("x", proportion, mean, direction=LOWER)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        canary_verdict("x", proportion, proportion, direction=LOWER, margin=-0.1)
    with pytest.raises(ValueError, match="min_samples must be >= 2"):
        canary_verdict("x", mean, mean, direction=LOWER, min_samples=1)
