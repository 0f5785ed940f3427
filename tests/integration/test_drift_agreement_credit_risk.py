"""Drift from mergeable profiles agrees with Evidently on the pipelines' credit-risk data.

Scenarios from ``orchard_pipelines.datasets.credit_risk``: no drift (another seed), covariate
shift in some features (the shifted frame's columns for three of them), in all features, and a
categorical shift only (the shifted frame's categorical columns). Ours go the service's way:
a reference profile, current rows profiled in several window buckets, stored as bytes and
merged; Evidently's ``DataDriftPreset`` runs on the same raw rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchard_core.profiles import ReferenceProfile, WindowProfile, merge_windows, profile_columns
from orchard_evaluation.drift import DatasetDrift, DriftOptions, detect_drift
from orchard_evaluation.drift.evidently_check import evidently_drift
from orchard_pipelines.datasets import credit_risk as data

NUMERIC = data.NUMERIC_FEATURES
CATEGORICAL = data.CATEGORICAL_FEATURES
MIN_AGREEMENT = 0.95
# Jensen-Shannon, chi-square and Z read exact counts; Wasserstein reads KLL sketches (k = 400,
# about 0.7% rank error); KS p-values move steeply mid-range (see the drift package's tests).
TOLERANCES = {"jensenshannon": 1e-9, "chisquare": 1e-9, "z": 1e-9, "wasserstein": 0.03, "ks": 0.15}

Scenario = Callable[[int, int], pd.DataFrame]


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    return data.generate(n, seed=seed, covariate_shift=shift)[list(data.FEATURES)]


def _mixed(columns: tuple[str, ...]) -> Scenario:
    def make(n: int, seed: int) -> pd.DataFrame:
        frame = _frame(n, seed)
        shifted = _frame(n, seed, shift=1.0)
        frame[list(columns)] = shifted[list(columns)]
        return frame

    return make


SCENARIOS: dict[str, Scenario] = {
    "no drift": lambda n, seed: _frame(n, seed),
    "some features": _mixed(("age", "income", "loan_amount")),
    "all features": lambda n, seed: _frame(n, seed, shift=1.0),
    "categorical only": _mixed(CATEGORICAL),
}
SIZES = ((3_000, 2_000), (800, 1_500))  # Wasserstein/JS, then KS/chi-square/Z


def _ours(reference: pd.DataFrame, current: pd.DataFrame) -> DatasetDrift:
    kinds: dict[str, Any] = {c: "categorical" for c in CATEGORICAL}
    profile = ReferenceProfile(
        len(reference), profile_columns({c: reference[c].to_numpy() for c in reference}, kinds)
    )
    buckets = [
        WindowProfile.from_bytes(
            WindowProfile.build(profile, {c: part[c].to_numpy() for c in part}).to_bytes()
        )
        for rows in np.array_split(np.arange(len(current)), 5)
        for part in [current.iloc[rows]]
    ]
    window = merge_windows(buckets)
    return detect_drift(profile.features, window.features, options=DriftOptions(min_rows=1))


@pytest.fixture(scope="module")
def runs() -> list[tuple[str, DatasetDrift, Any]]:
    found = []
    for name, scenario in SCENARIOS.items():
        for n_ref, n_cur in SIZES:
            reference = _frame(n_ref, seed=11)
            current = scenario(n_cur, 12)
            theirs = evidently_drift(reference, current, NUMERIC, CATEGORICAL)
            found.append((f"{name} {n_ref}/{n_cur}", _ours(reference, current), theirs))
    return found


def test_same_methods_scores_within_tolerance(runs: list[tuple[str, DatasetDrift, Any]]) -> None:
    for label, ours, theirs in runs:
        for column in data.FEATURES:
            mine, evidently = ours.column(column), theirs.columns[column]
            assert mine.method == evidently["method"], (label, column)
            tolerance = TOLERANCES[evidently["method"]]
            assert mine.score == pytest.approx(evidently["score"], abs=tolerance), (label, column)


def test_verdicts_agree(runs: list[tuple[str, DatasetDrift, Any]]) -> None:
    pairs = [
        (ours.column(column).drifted, theirs.columns[column]["drifted"])
        for _, ours, theirs in runs
        for column in data.FEATURES
    ]
    assert sum(a == b for a, b in pairs) / len(pairs) >= MIN_AGREEMENT
    assert {b for _, b in pairs} == {True, False}  # the scenarios do drift, and not everywhere
    by_scenario = {
        label: (ours.dataset_drifted, theirs.dataset_drifted) for label, ours, theirs in runs
    }
    assert sum(a == b for a, b in by_scenario.values()) / len(by_scenario) >= MIN_AGREEMENT
    assert by_scenario["no drift 3000/2000"] == (False, False)
    assert by_scenario["all features 3000/2000"] == (True, True)
