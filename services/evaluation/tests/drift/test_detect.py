"""detect_drift: Evidently's method choice, options, missing data and the data set verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from orchard_core.profiles import (
    CategoricalProfile,
    ReferenceProfile,
    WindowProfile,
    merge_windows,
    profile_columns,
)
from orchard_evaluation.drift import (
    DEFAULT_MIN_ROWS,
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    default_method,
    detect_drift,
)

RNG = np.random.default_rng(5)


def columns(n: int, shift: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": np.round(rng.normal(40 + 5 * shift, 10, n)),
        "income": rng.lognormal(10 + 0.3 * shift, 0.5, n),
        "plan": rng.choice(
            ["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]
        ),
    }


KINDS = {"age": "numeric", "income": "numeric", "plan": "categorical"}
REFERENCE = ReferenceProfile(
    n_rows=5_000,
    features=profile_columns(columns(5_000), KINDS),  # type: ignore[arg-type]
    outputs=profile_columns({"score": RNG.random(5_000)}),
)


def window(n: int, shift: float = 0.0, seed: int = 1) -> WindowProfile:
    return WindowProfile.build(
        REFERENCE, columns(n, shift, seed), {"score": np.random.default_rng(seed).random(n)}
    )


@pytest.mark.parametrize(
    ("kind", "reference_count", "n_unique", "method"),
    [
        ("numeric", 1_001, None, "wasserstein"),
        ("numeric", 1_001, 6, "wasserstein"),
        ("numeric", 1_001, 5, "jensenshannon"),
        ("categorical", 1_001, 50, "jensenshannon"),
        ("numeric", 1_000, None, "ks"),
        ("numeric", 1_000, 5, "chisquare"),
        ("numeric", 1_000, 3, "chisquare"),
        ("numeric", 1_000, 2, "z"),
        ("categorical", 1_000, 3, "chisquare"),
        ("categorical", 1_000, 2, "z"),
        ("categorical", 1_000, 1, "z"),
    ],
)
def test_default_methods_follow_evidently(
    kind: str, reference_count: int, n_unique: int | None, method: str
) -> None:
    assert default_method(kind, reference_count, n_unique) == method


def test_reference_against_window_finds_the_shifted_features() -> None:
    result = detect_drift(REFERENCE.features, window(3_000, shift=1.0).features)

    assert [(c.column, c.method, c.drifted) for c in result.columns] == [
        ("age", "wasserstein", True),
        ("income", "wasserstein", True),
        ("plan", "jensenshannon", True),
    ]
    assert (result.number_of_drifted_columns, result.drift_share, result.dataset_drifted) == (
        3,
        1.0,
        True,
    )


def test_no_drift_between_samples_of_one_distribution() -> None:
    result = detect_drift(
        REFERENCE.features, merge_windows(window(500, seed=s) for s in range(6)).features
    )
    assert result.dataset_drifted is False
    assert result.number_of_drifted_columns == 0


def test_window_against_window_compares_outputs() -> None:
    baseline = merge_windows(window(800, seed=s) for s in range(3))
    shifted_scores = {"score": np.random.default_rng(9).beta(5, 2, 2_000)}
    candidate = WindowProfile.build(REFERENCE, {}, shifted_scores)

    result = detect_drift(baseline.outputs, candidate.outputs)
    score = result.column("score")
    assert (score.method, score.reference_count, score.current_count) == (
        "wasserstein",
        2_400,
        2_000,
    )
    assert score.drifted is True
    assert (
        detect_drift(baseline.outputs, window(2_000, seed=7).outputs).column("score").drifted
        is False
    )


def test_method_and_threshold_overrides() -> None:
    options = DriftOptions(methods={"age": "psi", "plan": "chisquare"}, thresholds={"income": 0.5})
    result = detect_drift(REFERENCE.features, window(3_000, shift=1.0).features, options=options)

    assert (result.column("age").method, result.column("age").threshold) == ("psi", 0.1)
    assert result.column("plan").method == "chisquare"
    assert result.column("plan").p_value == result.column("plan").score
    assert (result.column("income").method, result.column("income").threshold) == (
        "wasserstein",
        0.5,
    )
    assert result.column("age").p_value is None


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match="unknown drift method 'kl' for column 'age'; known methods: wasserstein"
    ):
        DriftOptions(methods={"age": "kl"})


def test_method_must_suit_the_column_kind() -> None:
    with pytest.raises(ValueError, match="'ks' does not apply to categorical column 'plan'"):
        detect_drift(
            REFERENCE.features, window(500).features, options=DriftOptions(methods={"plan": "ks"})
        )


@pytest.mark.parametrize("n_rows", [0, DEFAULT_MIN_ROWS - 1])
def test_too_little_current_data_gives_no_verdict(n_rows: int) -> None:
    result = detect_drift(REFERENCE.features, window(n_rows, shift=1.0).features)

    for column in result.columns:
        assert (column.drifted, column.method, column.score, column.threshold) == (
            None,
            None,
            None,
            None,
        )
        assert column.reason is not None
        assert "fewer than min_rows=100" in column.reason
        assert column.current_count == n_rows
    assert result.dataset_drifted is None


def test_min_rows_counts_values_not_rows() -> None:
    rows = columns(400, seed=3)
    rows["income"] = np.where(np.arange(400) < 350, np.nan, rows["income"])
    result = detect_drift(REFERENCE.features, WindowProfile.build(REFERENCE, rows).features)

    assert result.column("income").drifted is None
    assert result.column("income").current_count == 50
    assert result.column("age").drifted is not None


def test_a_column_absent_from_current_gives_no_verdict() -> None:
    current = dict(window(500).features)
    del current["plan"]
    assert (
        detect_drift(REFERENCE.features, current).column("plan").reason
        == "column absent from current data"
    )


def test_columns_must_have_one_kind_on_both_sides() -> None:
    current = {"age": CategoricalProfile(500, 0, {"a": 500})}
    with pytest.raises(
        ValueError, match="'age' is numeric in the reference, categorical in current"
    ):
        detect_drift(REFERENCE.features, current)


def drift(drifted: bool | None) -> ColumnDrift:
    return ColumnDrift("c", "numeric", None, None, None, drifted, 1_000, 1_000)


@pytest.mark.parametrize(
    ("verdicts", "dataset_drifted"),
    [
        ([True, False], True),  # share 0.5 >= 0.5, as Evidently
        ([True, False, False], False),
        ([True, None, False, False], None),  # the unknown column could tip it
        ([True, True, None, False], True),
        ([None, False, False, False, False], False),
        ([], None),
    ],
)
def test_data_set_verdict(verdicts: list[bool | None], dataset_drifted: bool | None) -> None:
    assert DatasetDrift(tuple(drift(v) for v in verdicts)).dataset_drifted is dataset_drifted


def test_results_serialise_to_json() -> None:
    result = detect_drift(REFERENCE.features, window(2_000, shift=1.0).features)
    document = json.loads(json.dumps(result.to_dict()))

    assert document["dataset_drifted"] is True
    assert document["share_threshold"] == 0.5
    assert document["columns"][0] == {
        "column": "age",
        "kind": "numeric",
        "method": "wasserstein",
        "score": result.column("age").score,
        "threshold": 0.1,
        "drifted": True,
        "reference_count": 5_000,
        "current_count": 2_000,
        "p_value": None,
        "reason": None,
    }


def test_v1_reference_falls_back_to_histogram_and_quantiles() -> None:
    values = RNG.normal(0, 1, 5_000)
    profile = ReferenceProfile(5_000, profile_columns({"v": values}))
    document = profile.to_dict()
    document["schema"] = "orchard.reference_profile/v1"
    del document["features"]["v"]["sketch"], document["features"]["v"]["distinct"]
    v1 = ReferenceProfile.from_dict(document)

    for shift in (0.0, 0.1, 0.3):
        current = RNG.normal(shift, 1, 5_000)
        result = detect_drift(v1.features, WindowProfile.build(v1, {"v": current}).features).column(
            "v"
        )
        expected = stats.wasserstein_distance(values, current) / values.std()
        assert result.method == "wasserstein"
        assert result.score == pytest.approx(expected, abs=0.05)
