"""Sample-ratio mismatch check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from orchard_evaluation.stats import Verdict, srm_check


def test_chi_square_matches_scipy_and_weights_are_normalised() -> None:
    observed = {"a": 5120, "b": 4880, "c": 10_250}
    result = srm_check(observed, {"a": 25, "b": 25, "c": 50})
    expected = stats.chisquare([5120, 4880, 10_250], f_exp=[5062.5, 5062.5, 10_125.0])
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.expected_weights == {"a": 0.25, "b": 0.25, "c": 0.5}
    assert result.degrees_of_freedom == 2


def test_always_valid_p_value_is_the_dirichlet_multinomial_bayes_factor() -> None:
    counts, weights, concentration = [530, 470], np.array([0.5, 0.5]), 1000.0
    result = srm_check({"a": 530, "b": 470}, {"a": 1, "b": 1}, concentration=concentration)
    log_bf = stats.dirichlet_multinomial.logpmf(
        counts, concentration * weights, 1000
    ) - stats.multinomial.logpmf(counts, 1000, weights)
    assert result.always_valid_p_value == pytest.approx(min(1.0, math.exp(-log_bf)))
    assert result.always_valid_p_value >= result.p_value


def test_verdicts() -> None:
    balanced = srm_check({"a": 50_100, "b": 49_900}, {"a": 0.5, "b": 0.5})
    broken = srm_check({"a": 52_000, "b": 48_000}, {"a": 0.5, "b": 0.5})
    early = srm_check({"a": 30, "b": 20}, {"a": 0.5, "b": 0.5})
    assert (balanced.verdict, broken.verdict, early.verdict) == (
        Verdict.PASS,
        Verdict.FAIL,
        Verdict.INCONCLUSIVE,
    )
    assert broken.mismatch
    assert not balanced.mismatch
    payload = broken.to_dict()
    assert payload["threshold"] == 0.001
    assert payload["total"] == 100_000
    json.dumps(payload, allow_nan=False)


def test_zero_weight_arms() -> None:
    idle = srm_check({"a": 500, "b": 500, "off": 0}, {"a": 0.5, "b": 0.5, "off": 0.0})
    without = srm_check({"a": 500, "b": 500}, {"a": 0.5, "b": 0.5})
    assert idle.p_value == without.p_value
    assert idle.always_valid_p_value == without.always_valid_p_value
    stray = srm_check({"a": 500, "b": 500, "off": 3}, {"a": 0.5, "b": 0.5, "off": 0.0})
    assert stray.mismatch
    assert stray.verdict is Verdict.FAIL
    assert stray.to_dict()["statistic"] is None  # infinite
    json.dumps(stray.to_dict(), allow_nan=False)


def test_missing_arms_count_zero_and_one_arm_cannot_mismatch() -> None:
    result = srm_check({"a": 1000}, {"a": 0.5, "b": 0.5})
    assert result.observed == {"a": 1000, "b": 0}
    assert result.mismatch
    single = srm_check({"a": 1000}, {"a": 1.0})
    assert single.p_value == 1.0
    assert single.verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("observed", "weights", "message"),
    [
        ({"a": 1}, {}, "expected_weights is empty"),
        ({"a": 1, "x": 2}, {"a": 1.0}, r"observed arms not in expected_weights: \['x'\]"),
        ({"a": -1}, {"a": 1.0}, "count of arm 'a' must be an integer >= 0"),
        ({"a": 1.5}, {"a": 1.0}, "count of arm 'a' must be an integer >= 0"),
        ({"a": 1}, {"a": -1.0, "b": 2.0}, "weight of arm 'a' must be finite and >= 0"),
        ({"a": 1}, {"a": float("nan")}, "weight of arm 'a' must be finite"),
        ({"a": 1}, {"a": 0.0, "b": 0.0}, "expected_weights are all zero"),
    ],
)
def test_bad_inputs(observed: dict[str, int], weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        srm_check(observed, weights)
