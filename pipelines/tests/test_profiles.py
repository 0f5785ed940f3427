"""build_profile: pandas frames to reference profiles (the format is tested in orchard_core)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from orchard_pipelines.datasets.credit_risk import CATEGORICAL_FEATURES, FEATURES, generate
from orchard_pipelines.profiles import (
    SCHEMA,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    merge_profiles,
)

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
value_arrays = hnp.arrays(np.float64, st.integers(1, 200), elements=finite_floats)


def numeric(profile: ReferenceProfile, name: str) -> NumericProfile:
    column = profile.features[name]
    assert isinstance(column, NumericProfile)
    return column


def test_numeric_statistics_match_numpy() -> None:
    values = np.random.default_rng(0).normal(10, 2, 5_000)
    column = numeric(build_profile(pd.DataFrame({"x": values})), "x")

    assert column.count == 5_000
    assert column.missing == 0
    assert column.mean == pytest.approx(values.mean())
    assert column.std == pytest.approx(values.std())
    assert (column.min, column.max) == (values.min(), values.max())
    assert column.quantiles["0.5"] == pytest.approx(np.median(values))
    assert list(column.quantiles) == [
        "0.01",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "0.75",
        "0.9",
        "0.95",
        "0.99",
    ]


def test_histogram_has_quantile_edges_and_equal_mass_bins() -> None:
    values = np.random.default_rng(1).lognormal(0, 1, 10_000)
    histogram = numeric(build_profile(pd.DataFrame({"x": values}), bins=10), "x").histogram

    assert len(histogram.edges) == 9
    assert list(histogram.edges) == sorted(set(histogram.edges))
    assert len(histogram.counts) == len(histogram.edges) + 1
    assert sum(histogram.counts) == 10_000
    assert all(abs(count - 1_000) <= 2 for count in histogram.counts)


def test_constant_column_gets_one_edge() -> None:
    column = numeric(build_profile(pd.DataFrame({"x": [0.0] * 50})), "x")
    assert column.histogram.edges == (0.0,)
    assert column.histogram.counts == (0, 50)
    assert column.std == 0.0


def test_missing_and_non_finite_values_are_counted_not_profiled() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf, 3.0], "c": ["a", None, "b", "a"]})
    profile = build_profile(frame)

    x = numeric(profile, "x")
    assert (x.count, x.missing, x.mean) == (2, 2, 2.0)
    c = profile.features["c"]
    assert isinstance(c, CategoricalProfile)
    assert (c.count, c.missing, c.value_counts) == (3, 1, {"a": 2, "b": 1})
    json.loads(profile.to_json())  # strict JSON: no NaN leaks through


def test_all_missing_column_has_no_statistics() -> None:
    column = numeric(build_profile(pd.DataFrame({"x": [np.nan, np.nan]})), "x")
    assert (column.count, column.missing, column.mean, column.quantiles) == (0, 2, None, {})
    assert column.histogram.counts == (0,)


def test_column_kinds_follow_dtype_unless_told() -> None:
    frame = pd.DataFrame({"n": [1, 2, 3], "s": ["x", "y", "x"], "b": [True, False, True]})
    profile = build_profile(frame, categorical=["n"])

    assert {name: p.kind for name, p in profile.features.items()} == {
        "n": "categorical",
        "s": "categorical",
        "b": "categorical",
    }
    assert build_profile(frame).features["n"].kind == "numeric"


def test_outputs_are_profiled_alongside_features() -> None:
    frame = generate(2_000, seed=0)
    profile = build_profile(
        frame[list(FEATURES)],
        categorical=CATEGORICAL_FEATURES,
        outputs=pd.DataFrame({"prediction": frame["label"], "score": frame["p_true"]}),
        categorical_outputs=["prediction"],
    )

    assert set(profile.features) == set(FEATURES)
    prediction = profile.outputs["prediction"]
    assert isinstance(prediction, CategoricalProfile)
    assert set(prediction.value_counts) == {"0", "1"}
    assert profile.outputs["score"].kind == "numeric"


def test_outputs_must_match_feature_rows() -> None:
    with pytest.raises(ValueError, match="rows"):
        build_profile(pd.DataFrame({"x": [1.0, 2.0]}), outputs=pd.DataFrame({"y": [1.0]}))


def test_json_round_trip_and_schema_field() -> None:
    frame = generate(1_000, seed=2)
    profile = build_profile(
        frame[list(FEATURES)], outputs=pd.DataFrame({"prediction": frame["label"]})
    )
    document = json.loads(profile.to_json())

    assert document["schema"] == SCHEMA == "orchard.reference_profile/v2"
    assert document["n_rows"] == 1_000
    assert set(document["features"]["income"]["histogram"]) == {"edges", "counts"}
    assert document["features"]["income"]["sketch"]["kind"] == "kll_floats"
    assert ReferenceProfile.from_json(profile.to_json()) == profile


def test_edges_from_reuses_reference_edges() -> None:
    reference = build_profile(pd.DataFrame({"x": np.arange(100.0)}))
    window = build_profile(pd.DataFrame({"x": [-1e9, 50.0, 1e9]}), edges_from=reference)

    histogram = numeric(window, "x").histogram
    assert histogram.edges == numeric(reference, "x").histogram.edges
    assert histogram.counts[0] == 1
    assert histogram.counts[-1] == 1


def test_edges_from_needs_every_numeric_column() -> None:
    reference = build_profile(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="'y'"):
        build_profile(pd.DataFrame({"y": [1.0]}), edges_from=reference)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(values=value_arrays, split=st.floats(min_value=0, max_value=1))
def test_merging_window_profiles_equals_profiling_everything(
    values: np.ndarray, split: float
) -> None:
    cut = int(split * len(values))
    categories = np.where(values > 0, "pos", "neg")
    whole_frame = pd.DataFrame({"x": values, "c": categories})
    whole = build_profile(whole_frame)
    first = build_profile(whole_frame.iloc[:cut], edges_from=whole)
    second = build_profile(whole_frame.iloc[cut:], edges_from=whole)

    merged = merge_profiles(first, second)

    assert merged.n_rows == whole.n_rows
    assert merged.features["c"] == whole.features["c"]
    got, want = numeric(merged, "x"), numeric(whole, "x")
    assert got.histogram == want.histogram
    assert (got.count, got.missing, got.min, got.max) == (want.count, 0, want.min, want.max)
    assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-6)
    assert got.std == pytest.approx(want.std, rel=1e-6, abs=1e-4)
    assert got.min is not None
    assert got.max is not None
    assert all(got.min <= q <= got.max for q in got.quantiles.values())
    assert list(got.quantiles.values()) == sorted(got.quantiles.values())


def test_pandas_missing_values_and_categories_are_handled() -> None:
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.Categorical(["a", None, "b"]),
            "f": [1.0, 2.0, 2.0],
        }
    )
    profile = build_profile(frame, categorical=["f"])

    assert (numeric(profile, "n").count, numeric(profile, "n").missing) == (2, 1)
    c, f = profile.features["c"], profile.features["f"]
    assert isinstance(c, CategoricalProfile)
    assert isinstance(f, CategoricalProfile)
    assert (c.value_counts, c.missing) == ({"a": 1, "b": 1}, 1)
    assert f.value_counts == {"2": 2, "1": 1}  # integral floats read as integer text
