"""Verdicts from profiles agree with Evidently's DataDriftPreset on the same rows.

The scenario data mimic the credit-risk demo set (orchard_pipelines.datasets.credit_risk, which
this service's test environment does not install): 8 numeric features, three of them
integer-valued and two with at most 5 distinct values (so Evidently's chi-square, Z and
value-binned Jensen-Shannon paths run too), and 3 categorical ones. The reference is profiled
with orchard_core.profiles; the current rows are split into batches whose window profiles are
stored as bytes, read back and merged, as the service does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pytest

from orchard_core.profiles import (
    ReferenceProfile,
    WindowProfile,
    merge_windows,
    profile_columns,
)
from orchard_evaluation.drift import DatasetDrift, DriftOptions, detect_drift
from orchard_evaluation.drift.evidently_check import evidently_drift

NUMERIC: Final = (
    "age",
    "income",
    "debt_ratio",
    "credit_history_months",
    "num_open_accounts",
    "loan_amount",
    "num_dependents",
    "has_cosigner",
)
CATEGORIES: Final = {
    "employment_type": (
        ("salaried", "self_employed", "contract", "unemployed"),
        (0.6, 0.2, 0.15, 0.05),
        (0.35, 0.2, 0.3, 0.15),
    ),
    "home_ownership": (("own", "mortgage", "rent"), (0.25, 0.4, 0.35), (0.1, 0.3, 0.6)),
    "loan_purpose": (
        ("debt", "home", "car", "education", "business"),
        (0.35, 0.2, 0.2, 0.1, 0.15),
        (0.2, 0.1, 0.15, 0.2, 0.35),
    ),
}
FEATURES: Final = NUMERIC + tuple(CATEGORIES)

# Counts-based methods (Jensen-Shannon on categories or on <= 5 numeric values, chi-square, Z)
# read exact counts, so they match Evidently to floating-point noise.
EXACT_TOLERANCE: Final = 1e-9
# Normed Wasserstein from two KLL sketches (k = 400, rank error ~0.7 %): the sketches misplace a
# little mass in the tails, which moves W1 by up to ~0.02 reference standard deviations.
WASSERSTEIN_TOLERANCE: Final = 0.03
# KS p-values: references of <= 1000 values (where Evidently uses KS) are sketched exactly, so
# only the current side's sketch, once it holds > 1000 values, perturbs the KS statistic: by up to
# ~0.007 at k = 400. Where p is steepest in the statistic (p ~ 0.3-0.8) that moves p by up to
# ~0.13 (largest of 1,800 trials at 400 vs 3,000 rows); near the 0.05 threshold p moves far
# less (at most ~0.05 while p < 0.2), which is why verdicts still agree.
KS_P_VALUE_TOLERANCE: Final = 0.15
KS_NEAR_THRESHOLD: Final = 0.2
KS_NEAR_THRESHOLD_TOLERANCE: Final = 0.08
MIN_AGREEMENT: Final = 0.95

TOLERANCES: Final = {
    "wasserstein": WASSERSTEIN_TOLERANCE,
    "ks": KS_P_VALUE_TOLERANCE,
    "jensenshannon": EXACT_TOLERANCE,
    "chisquare": EXACT_TOLERANCE,
    "z": EXACT_TOLERANCE,
}


def generate(n: int, rng: np.random.Generator, shift: dict[str, float]) -> pd.DataFrame:
    """Credit-risk-like rows; ``shift`` maps a feature to its covariate shift strength."""

    def s(name: str) -> float:
        return shift.get(name, 0.0)

    age = np.clip(np.round(rng.normal(42 - 5 * s("age"), 11, n)), 18, 80).astype(np.int64)
    frame = {
        "age": age,
        "income": rng.lognormal(np.log(55_000) + np.log(0.75) * s("income"), 0.5, n),
        "debt_ratio": rng.beta(2 + 1.5 * s("debt_ratio"), 5, n),
        "credit_history_months": np.floor(
            rng.beta(2 + s("credit_history_months"), 2, n) * (age - 18) * 12
        ).astype(np.int64),
        "num_open_accounts": rng.poisson(4 + 1.5 * s("num_open_accounts"), n).astype(np.int64),
        "loan_amount": rng.lognormal(np.log(15_000) + np.log(1.3) * s("loan_amount"), 0.6, n),
        "num_dependents": rng.choice(
            4, n, p=_mix((0.4, 0.3, 0.2, 0.1), (0.2, 0.3, 0.3, 0.2), s("num_dependents"))
        ).astype(np.int64),
        "has_cosigner": (rng.random(n) < 0.2 + 0.15 * s("has_cosigner")).astype(np.int64),
    }
    for name, (values, base, shifted) in CATEGORIES.items():
        frame[name] = rng.choice(
            np.asarray(values, dtype=object), n, p=_mix(base, shifted, s(name))
        )
    return pd.DataFrame(frame)


def _mix(base: tuple[float, ...], shifted: tuple[float, ...], strength: float) -> np.ndarray:
    weight = min(strength, 1.0)
    return (1 - weight) * np.asarray(base) + weight * np.asarray(shifted)


@dataclass(frozen=True)
class Scenario:
    name: str
    shift: dict[str, float]


SCENARIOS: Final = (
    Scenario("no drift", {}),
    Scenario(
        "some numeric", {"age": 0.4, "income": 0.3, "num_open_accounts": 0.3, "has_cosigner": 1.0}
    ),
    Scenario("all features", dict.fromkeys(FEATURES, 0.5)),
    Scenario("categorical only", dict.fromkeys(CATEGORIES, 0.6)),
)
SIZES: Final = ((4_000, 2_500), (1_500, 5_000), (900, 600), (400, 3_000))
SEEDS: Final = (0, 1)


def ours(reference: pd.DataFrame, current: pd.DataFrame) -> DatasetDrift:
    kinds = {name: "numeric" if name in NUMERIC else "categorical" for name in FEATURES}
    profile = ReferenceProfile(
        n_rows=len(reference),
        features=profile_columns({c: reference[c].to_numpy() for c in FEATURES}, kinds),  # type: ignore[arg-type]
    )
    windows = [
        WindowProfile.from_bytes(
            WindowProfile.build(profile, {c: chunk[c].to_numpy() for c in FEATURES}).to_bytes()
        )
        for rows in np.array_split(np.arange(len(current)), 7)
        for chunk in [current.iloc[rows]]
    ]
    return detect_drift(
        profile.features, merge_windows(windows).features, options=DriftOptions(min_rows=1)
    )


def evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per column: method, score, threshold, drifted; under ``""``: share and dataset_drifted."""
    found = evidently_drift(reference, current, NUMERIC, tuple(CATEGORIES))
    return {
        **found.columns,
        "": {"share": found.drift_share, "dataset_drifted": found.dataset_drifted},
    }


@dataclass(frozen=True)
class Run:
    label: str
    ours: DatasetDrift
    theirs: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    found = []
    for scenario in SCENARIOS:
        for n_ref, n_cur in SIZES:
            for seed in SEEDS:
                rng = np.random.default_rng(seed)
                reference = generate(n_ref, rng, {})
                current = generate(n_cur, rng, scenario.shift)
                label = f"{scenario.name} ref={n_ref} cur={n_cur} seed={seed}"
                found.append(Run(label, ours(reference, current), evidently(reference, current)))
    return found


def test_methods_and_thresholds_are_evidentlys(runs: list[Run]) -> None:
    for run in runs:
        for name in FEATURES:
            mine, theirs = run.ours.column(name), run.theirs[name]
            assert (mine.method, mine.threshold) == (theirs["method"], theirs["threshold"]), (
                run.label,
                name,
            )


def test_scores_are_within_the_stated_tolerances(runs: list[Run]) -> None:
    # KLL compaction is randomised, so these bounds hold with high probability, not always.
    for run in runs:
        for name in FEATURES:
            mine, theirs = run.ours.column(name), run.theirs[name]
            tolerance = TOLERANCES[theirs["method"]]
            if theirs["method"] == "ks" and theirs["score"] < KS_NEAR_THRESHOLD:
                tolerance = KS_NEAR_THRESHOLD_TOLERANCE
            assert mine.score == pytest.approx(theirs["score"], abs=tolerance), (run.label, name)


def test_verdicts_agree_for_at_least_95_percent_of_features(runs: list[Run]) -> None:
    pairs = [
        (run.ours.column(name).drifted, run.theirs[name]["drifted"])
        for run in runs
        for name in FEATURES
    ]
    agreement = sum(mine == theirs for mine, theirs in pairs) / len(pairs)
    assert agreement >= MIN_AGREEMENT
    assert 0.2 < sum(theirs for _, theirs in pairs) / len(pairs) < 0.8  # the scenarios do drift


def test_data_set_verdicts_agree(runs: list[Run]) -> None:
    agree = sum(run.ours.dataset_drifted == run.theirs[""]["dataset_drifted"] for run in runs)
    assert agree / len(runs) >= MIN_AGREEMENT
    assert {run.theirs[""]["dataset_drifted"] for run in runs} == {True, False}
