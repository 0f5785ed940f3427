"""Reference profiles from plain columns: statistics, sketches, the bin rule, JSON and merging."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from orchard_core.profiles import (
    DISTINCT_LIMIT,
    EXACT_SKETCH_LIMIT,
    SCHEMA,
    SCHEMA_V1,
    CategoricalProfile,
    ColumnProfile,
    ColumnValues,
    NumericProfile,
    ReferenceProfile,
    bin_counts,
    category_key,
    load_sketch,
    merge_profiles,
    profile_columns,
    sketch_items,
)
from orchard_core.profiles._values import column_length

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
value_arrays = hnp.arrays(np.float64, st.integers(1, 200), elements=finite_floats)


def numeric(columns: Mapping[str, ColumnProfile] | ReferenceProfile, name: str) -> NumericProfile:
    column = columns.features[name] if isinstance(columns, ReferenceProfile) else columns[name]
    assert isinstance(column, NumericProfile)
    return column


def reference(**columns: ColumnValues) -> ReferenceProfile:
    profiles = profile_columns(columns)
    return ReferenceProfile(n_rows=column_length(next(iter(columns.values()))), features=profiles)


def test_numeric_statistics_match_numpy() -> None:
    values = np.random.default_rng(0).normal(10, 2, 5_000)
    column = numeric(profile_columns({"x": values}), "x")

    assert (column.count, column.missing) == (5_000, 0)
    assert column.mean == pytest.approx(values.mean())
    assert column.std == pytest.approx(values.std())
    assert (column.min, column.max) == (values.min(), values.max())
    assert column.quantiles["0.5"] == pytest.approx(np.median(values))
    assert column.distinct is None
    assert column.n_unique is None


def test_sketch_describes_the_values() -> None:
    values = np.random.default_rng(1).lognormal(0, 1, 20_000)
    column = numeric(profile_columns({"x": values}), "x")
    assert column.sketch is not None

    sketch = load_sketch(column.sketch)
    assert sketch.n == 20_000
    assert sketch.get_quantile(0.5) == pytest.approx(np.median(values), rel=0.02)
    assert sketch.get_min_value() == pytest.approx(values.min())


def test_small_columns_are_sketched_exactly() -> None:
    values = np.random.default_rng(2).normal(0, 1, EXACT_SKETCH_LIMIT)
    column = numeric(profile_columns({"x": values}), "x")
    assert column.sketch is not None

    items, weights = sketch_items(column.sketch)
    assert items == pytest.approx(np.sort(values.astype(np.float32)))
    assert set(weights.tolist()) == {1.0}


def test_few_distinct_values_are_counted_exactly() -> None:
    values = np.array([0, 1, 1, 2, 2, 2, 3], dtype=np.int64)
    column = numeric(profile_columns({"x": values}), "x")
    assert column.distinct == {0.0: 1, 1.0: 2, 2.0: 3, 3.0: 1}
    assert column.n_unique == 4

    many = numeric(profile_columns({"x": np.arange(DISTINCT_LIMIT + 1.0)}), "x")
    assert many.distinct is None


def test_histogram_has_quantile_edges_and_equal_mass_bins() -> None:
    values = np.random.default_rng(1).lognormal(0, 1, 10_000)
    histogram = numeric(profile_columns({"x": values}, bins=10), "x").histogram

    assert len(histogram.edges) == 9
    assert list(histogram.edges) == sorted(set(histogram.edges))
    assert len(histogram.counts) == len(histogram.edges) + 1
    assert all(abs(count - 1_000) <= 2 for count in histogram.counts)


def test_bin_rule_is_left_closed_with_open_outer_bins() -> None:
    counts = bin_counts([-100.0, 0.99, 1.0, 1.5, 2.0, 3.0, 1e9, np.nan, np.inf], [1.0, 2.0, 3.0])
    assert counts.tolist() == [2, 2, 1, 2]


def test_values_that_are_not_finite_numbers_count_as_missing() -> None:
    columns = profile_columns(
        {"x": [1.0, None, "abc", float("inf"), 3, {"a": 1}], "c": ["a", None, np.nan, "a", 1, 2.0]},
        {"x": "numeric", "c": "categorical"},
    )
    x = numeric(columns, "x")
    assert (x.count, x.missing, x.mean) == (2, 4, 2.0)
    c = columns["c"]
    assert isinstance(c, CategoricalProfile)
    assert (c.count, c.missing, c.value_counts) == (4, 2, {"a": 2, "1": 1, "2": 1})


def test_columns_must_have_equal_length() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        profile_columns({"x": [1.0, 2.0], "y": [1.0]})


def test_kinds_follow_dtype_unless_told() -> None:
    columns = {"n": np.array([1, 2, 3]), "s": np.array(["x", "y", "x"]), "b": np.array([True] * 3)}
    assert {k: p.kind for k, p in profile_columns(columns).items()} == {
        "n": "numeric",
        "s": "categorical",
        "b": "categorical",
    }
    assert profile_columns(columns, {"n": "categorical"})["n"].kind == "categorical"


@pytest.mark.parametrize(
    ("value", "key"),
    [(1, "1"), (1.0, "1"), (np.int64(2), "2"), (1.5, "1.5"), (True, "True"), ("a", "a")],
)
def test_categories_have_one_canonical_text(value: object, key: str) -> None:
    assert category_key(value) == key


def test_integer_and_float_categories_agree() -> None:
    as_ints = profile_columns({"c": np.array([1, 2, 2])}, {"c": "categorical"})["c"]
    as_floats = profile_columns({"c": [1.0, 2.0, 2.0, None]}, {"c": "categorical"})["c"]
    assert isinstance(as_ints, CategoricalProfile)
    assert isinstance(as_floats, CategoricalProfile)
    assert as_ints.value_counts == as_floats.value_counts == {"2": 2, "1": 1}


def test_all_missing_column_has_no_statistics() -> None:
    column = numeric(profile_columns({"x": [np.nan, np.nan]}), "x")
    assert (column.count, column.missing, column.mean, column.quantiles) == (0, 2, None, {})
    assert column.histogram.counts == (0,)


def test_json_round_trip_keeps_sketches() -> None:
    rng = np.random.default_rng(3)
    profile = ReferenceProfile(
        n_rows=3_000,
        features=profile_columns(
            {"x": rng.normal(size=3_000), "k": np.repeat([0, 1, 2], 1_000), "c": ["a", "b"] * 1_500}
        ),
        outputs=profile_columns({"p": rng.random(3_000)}),
    )
    document = json.loads(profile.to_json())

    assert document["schema"] == SCHEMA == "orchard.reference_profile/v2"
    assert document["features"]["x"]["sketch"]["kind"] == "kll_floats"
    assert document["features"]["k"]["distinct"] == [[0.0, 1000], [1.0, 1000], [2.0, 1000]]
    assert ReferenceProfile.from_json(profile.to_json()) == profile


def test_v1_profiles_are_still_read() -> None:
    document = json.loads(reference(x=np.arange(100.0)).to_json())
    document["schema"] = SCHEMA_V1
    for column in document["features"].values():
        del column["sketch"], column["distinct"]

    column = numeric(ReferenceProfile.from_dict(document), "x")
    assert (column.sketch, column.distinct, column.count) == (None, None, 100)


def test_unknown_schema_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported profile schema"):
        ReferenceProfile.from_dict({"schema": "orchard.reference_profile/v9"})


def test_edges_from_reuses_reference_edges() -> None:
    whole = reference(x=np.arange(100.0))
    window = profile_columns({"x": [-1e9, 50.0, 1e9]}, edges_from=whole.features)

    histogram = numeric(window, "x").histogram
    assert histogram.edges == numeric(whole, "x").histogram.edges
    assert (histogram.counts[0], histogram.counts[-1]) == (1, 1)


def test_edges_from_needs_every_numeric_column() -> None:
    with pytest.raises(ValueError, match="'y'"):
        profile_columns({"y": [1.0]}, edges_from=reference(x=[1.0, 2.0]).features)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(values=value_arrays, split=st.floats(min_value=0, max_value=1))
def test_merging_profiles_equals_profiling_everything(values: np.ndarray, split: float) -> None:
    cut = int(split * len(values))
    categories = np.where(values > 0, "pos", "neg")
    whole = ReferenceProfile(len(values), profile_columns({"x": values, "c": categories}))

    def part(rows: slice) -> ReferenceProfile:
        columns = {"x": values[rows], "c": categories[rows]}
        return ReferenceProfile(
            len(values[rows]), profile_columns(columns, edges_from=whole.features)
        )

    merged = merge_profiles(part(slice(None, cut)), part(slice(cut, None)))

    assert merged.n_rows == whole.n_rows
    assert merged.features["c"] == whole.features["c"]
    got, want = numeric(merged, "x"), numeric(whole, "x")
    assert got.histogram == want.histogram
    assert got.distinct == want.distinct
    assert (got.count, got.missing, got.min, got.max) == (want.count, 0, want.min, want.max)
    assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-6)
    assert got.std == pytest.approx(want.std, rel=1e-6, abs=1e-4)
    assert got.sketch is not None
    assert load_sketch(got.sketch).n == len(values)
    assert got.min is not None
    assert got.max is not None
    assert all(got.min <= q <= got.max for q in got.quantiles.values())
    assert list(got.quantiles.values()) == sorted(got.quantiles.values())


def test_merged_quantiles_come_from_the_merged_sketch() -> None:
    values = np.random.default_rng(3).normal(0, 1, 20_000)
    whole = reference(x=values)

    def part(rows: slice) -> ReferenceProfile:
        return ReferenceProfile(0, profile_columns({"x": values[rows]}, edges_from=whole.features))

    merged = merge_profiles(part(slice(None, 7_000)), part(slice(7_000, None)))
    for level, value in numeric(merged, "x").quantiles.items():
        # Within the sketch's rank error (about 0.7 % at k=400) of the true quantile.
        assert np.mean(values < value) == pytest.approx(float(level), abs=0.01), level


def test_merging_profiles_binned_differently_fails() -> None:
    with pytest.raises(ValueError, match="different edges"):
        merge_profiles(reference(x=np.arange(10.0)), reference(x=np.arange(100.0)))
