"""Each drift method, computed from profiles, against scipy or Evidently on the raw rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orchard_core.profiles import ReferenceProfile, WindowProfile, profile_columns
from orchard_evaluation.drift import ColumnDrift, DriftOptions, _methods, detect_drift
from orchard_evaluation.drift._summaries import numeric_view

StatTest = Callable[..., tuple[float, bool]]
RNG = np.random.default_rng(11)


def judge(
    reference: np.ndarray, current: np.ndarray, method: str | None = None, kind: str = "numeric"
) -> ColumnDrift:
    """Profile the reference, window the current rows, and judge column ``v``."""
    profile = ReferenceProfile(len(reference), profile_columns({"v": reference}, {"v": kind}))  # type: ignore[dict-item]
    window = WindowProfile.build(profile, {"v": current})
    options = DriftOptions(methods={"v": method} if method else {}, min_rows=1)
    return detect_drift(profile.features, window.features, options=options).column("v")


def test_wasserstein_of_small_samples_is_exact() -> None:
    reference, current = RNG.normal(0, 2, 800), RNG.normal(0.3, 2, 700)
    result = judge(reference, current, "wasserstein")

    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert result.score == pytest.approx(expected, rel=1e-5)
    assert (result.threshold, result.drifted) == (0.1, expected >= 0.1)


def test_wasserstein_of_large_samples_is_within_sketch_error() -> None:
    reference, current = RNG.lognormal(0, 0.5, 30_000), RNG.lognormal(0.05, 0.5, 50_000)
    result = judge(reference, current)

    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert result.method == "wasserstein"
    assert result.score == pytest.approx(expected, abs=0.03)


def test_wasserstein_norm_has_evidentlys_floor() -> None:
    result = judge(np.full(2_000, 5.0), np.full(2_000, 5.0005), "wasserstein")
    assert result.score == pytest.approx(0.0005 / 0.001, rel=1e-3)


@pytest.mark.parametrize(("n", "m", "shift"), [(800, 700, 0.0), (500, 500, 0.2), (300, 900, 0.1)])
def test_ks_of_small_samples_matches_scipy(n: int, m: int, shift: float) -> None:
    reference, current = RNG.normal(0, 1, n), RNG.normal(shift, 1, m)
    result = judge(reference, current)

    expected = stats.ks_2samp(reference, current).pvalue
    assert result.method == "ks"
    assert result.score == result.p_value == pytest.approx(expected, abs=1e-9)
    assert result.drifted == (expected <= 0.05)


def test_ks_statistic_from_a_large_sketch_is_within_its_rank_error() -> None:
    reference, current = RNG.normal(0, 1, 900), RNG.normal(0.05, 1, 40_000)
    profile = ReferenceProfile(900, profile_columns({"v": reference}))
    window = WindowProfile.build(profile, {"v": current})
    views = [numeric_view(c) for c in (profile.features["v"], window.features["v"])]  # type: ignore[arg-type]

    expected = stats.ks_2samp(reference, current).statistic
    assert _methods.ks_statistic(*views) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("n", "m"), [(900, 700), (1_000, 10_000), (800, 40_000), (20_000, 30_000)])
def test_ks_p_value_is_scipys_for_the_same_statistic(n: int, m: int) -> None:
    reference, current = RNG.normal(0, 1, n), RNG.normal(0.03, 1, m)
    expected = stats.ks_2samp(reference, current)  # exact up to 10,000 values, else asymptotic

    assert _methods.ks_p_value(expected.statistic, n, m) == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_matches_scipy() -> None:
    reference = RNG.choice(["a", "b", "c", "d"], 900, p=[0.4, 0.3, 0.2, 0.1])
    current = RNG.choice(["a", "b", "c", "d"], 600, p=[0.35, 0.3, 0.2, 0.15])
    result = judge(reference, current, kind="categorical")

    keys = ["a", "b", "c", "d"]
    observed = [np.sum(current == k) for k in keys]
    expected = [np.sum(reference == k) * 600 / 900 for k in keys]
    assert result.method == "chisquare"
    assert result.score == pytest.approx(stats.chisquare(observed, expected).pvalue, rel=1e-12)


def test_chi_square_with_a_value_new_in_current_data_drifts() -> None:
    result = judge(
        np.array(["a", "b", "c"] * 200), np.array(["a", "b", "c", "z"] * 150), kind="categorical"
    )
    assert (result.method, result.score, result.drifted) == ("chisquare", 0.0, True)


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_z_test_matches_evidently(kind: str, evidently_stattests: dict[str, StatTest]) -> None:
    reference = (RNG.random(700) < 0.3).astype(np.int64)
    current = (RNG.random(400) < 0.38).astype(np.int64)
    result = judge(reference, current, kind=kind)

    score, drifted = evidently_stattests["z"](pd.Series(reference), pd.Series(current), kind, 0.05)
    assert result.method == "z"
    assert result.score == pytest.approx(score, abs=1e-12)
    assert result.drifted == drifted


def test_z_test_of_one_shared_value_is_one() -> None:
    assert judge(np.zeros(300), np.zeros(300)).score == 1.0


def test_jensen_shannon_counts_categories_missing_on_one_side(
    evidently_stattests: dict[str, StatTest],
) -> None:
    reference = RNG.choice(["a", "b", "c"], 3_000, p=[0.5, 0.3, 0.2])
    current = RNG.choice(["a", "b", "d"], 2_000, p=[0.5, 0.3, 0.2])
    result = judge(reference, current, kind="categorical")

    score, drifted = evidently_stattests["jensenshannon"](
        pd.Series(reference), pd.Series(current), "categorical", 0.1
    )
    assert result.method == "jensenshannon"
    assert result.score == pytest.approx(score, abs=1e-12)
    assert result.drifted == drifted


def test_numeric_jensen_shannon_uses_sturges_bins(evidently_stattests: dict[str, StatTest]) -> None:
    reference, current = RNG.normal(0, 1, 900), RNG.normal(0.2, 1.1, 800)
    result = judge(reference, current, "jensenshannon")

    score, _ = evidently_stattests["jensenshannon"](
        pd.Series(reference), pd.Series(current), "numeric", 0.1
    )
    assert result.score == pytest.approx(score, abs=1e-6)


@pytest.mark.parametrize(
    ("reference", "current", "kind"),
    [
        (RNG.normal(0, 1, 900), RNG.normal(0.3, 1, 700), "numeric"),
        (RNG.integers(0, 8, 1_500), RNG.integers(0, 9, 1_200), "numeric"),  # binned by value
        (RNG.choice(["x", "y", "z"], 900), RNG.choice(["x", "y"], 500), "categorical"),
    ],
)
def test_psi_matches_evidently(
    reference: np.ndarray, current: np.ndarray, kind: str, evidently_stattests: dict[str, StatTest]
) -> None:
    result = judge(reference, current, "psi", kind)

    score, drifted = evidently_stattests["psi"](pd.Series(reference), pd.Series(current), kind, 0.1)
    assert (result.method, result.threshold) == ("psi", 0.1)
    assert result.score == pytest.approx(score, rel=1e-6)
    assert result.drifted == drifted
