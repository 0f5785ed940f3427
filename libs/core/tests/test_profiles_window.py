"""Window profiles: built against a reference, merged exactly, stored as compact bytes."""

from __future__ import annotations

import numpy as np
import pytest

from orchard_core.profiles import (
    CategoricalProfile,
    NumericWindow,
    ReferenceProfile,
    WindowProfile,
    load_sketch,
    merge_windows,
    profile_columns,
)

RNG = np.random.default_rng(7)
TRAINING = {
    "x": RNG.normal(50, 10, 5_000),
    "k": RNG.integers(0, 4, 5_000),
    "c": RNG.choice(["a", "b", "c"], 5_000),
}
REFERENCE = ReferenceProfile(
    n_rows=5_000,
    features=profile_columns(TRAINING, {"c": "categorical"}),
    outputs=profile_columns({"score": RNG.random(5_000)}),
)


def batch(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(52, 10, n),
        "k": rng.integers(0, 5, n),
        "c": rng.choice(["a", "b", "d"], n),
    }


def numeric(window: WindowProfile, name: str = "x") -> NumericWindow:
    column = window.features[name]
    assert isinstance(column, NumericWindow)
    return column


def test_window_summarises_a_batch_on_the_reference_edges() -> None:
    rows = batch(2_000, seed=1)
    window = WindowProfile.build(REFERENCE, rows, {"score": np.linspace(0, 1, 2_000)})

    x = numeric(window)
    assert window.n_rows == 2_000
    assert (x.count, x.missing) == (2_000, 0)
    assert x.mean == pytest.approx(rows["x"].mean())
    assert x.std == pytest.approx(rows["x"].std())
    assert (x.min, x.max) == (rows["x"].min(), rows["x"].max())
    assert x.histogram.edges == REFERENCE.features["x"].histogram.edges  # type: ignore[union-attr]
    assert sum(x.histogram.counts) == 2_000
    assert numeric(window, "k").distinct == {
        float(v): int(n) for v, n in zip(*np.unique(rows["k"], return_counts=True), strict=True)
    }
    assert x.sketch is not None
    assert load_sketch(x.sketch).n == 2_000
    assert window.outputs["score"].count == 2_000


def test_bad_values_count_as_missing_and_never_raise() -> None:
    window = WindowProfile.build(
        REFERENCE, {"x": [1.0, "oops", None, float("nan"), float("inf"), [1], 7], "k": [1] * 7}
    )
    x = numeric(window)
    assert (x.count, x.missing, x.min, x.max) == (2, 5, 1.0, 7.0)


def test_absent_columns_are_missing_and_unknown_columns_ignored() -> None:
    window = WindowProfile.build(REFERENCE, {"x": [1.0, 2.0, 3.0], "extra": ["z"] * 3})

    assert set(window.features) == {"x", "k", "c"}
    assert (numeric(window, "k").count, numeric(window, "k").missing) == (0, 3)
    c = window.features["c"]
    assert isinstance(c, CategoricalProfile)
    assert (c.count, c.missing) == (0, 3)
    assert window.outputs["score"].missing == 3


def test_batch_columns_must_agree_in_length() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        WindowProfile.build(REFERENCE, {"x": [1.0, 2.0], "k": [1]})


def test_merging_windows_equals_one_window_of_all_rows() -> None:
    parts = [batch(n, seed) for seed, n in enumerate([300, 1, 2_500, 0, 700])]
    whole_rows = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    whole = WindowProfile.build(REFERENCE, whole_rows)

    merged = merge_windows(WindowProfile.build(REFERENCE, p) for p in parts)

    assert merged.n_rows == whole.n_rows == 3_501
    assert merged.features["c"] == whole.features["c"]
    assert merged.outputs == whole.outputs
    got, want = numeric(merged), numeric(whole)
    assert (got.count, got.missing, got.min, got.max) == (want.count, 0, want.min, want.max)
    assert got.histogram == want.histogram
    assert got.mean == pytest.approx(want.mean, rel=1e-12)
    assert got.m2 == pytest.approx(want.m2, rel=1e-9)
    assert numeric(merged, "k").distinct == numeric(whole, "k").distinct
    assert got.sketch is not None
    assert load_sketch(got.sketch).n == 3_501
    pairwise = WindowProfile.build(REFERENCE, parts[0])
    for part in parts[1:]:
        pairwise = pairwise.merge(WindowProfile.build(REFERENCE, part))
    assert numeric(pairwise).histogram == want.histogram


def test_distinct_values_give_way_to_none_past_the_limit() -> None:
    reference = ReferenceProfile(3, profile_columns({"v": [1.0, 2.0, 3.0]}))
    windows = [
        WindowProfile.build(reference, {"v": np.arange(i * 10, i * 10 + 10.0)}) for i in (0, 1, 2)
    ]

    few = numeric(merge_windows(windows[:2]), "v")
    assert (few.n_unique, few.sketch) == (20, None)  # exact counts make a sketch redundant
    many = numeric(merge_windows(windows), "v")
    assert many.distinct is None
    assert many.sketch is not None
    assert sorted(v for v, _ in load_sketch(many.sketch)) == list(np.arange(30.0))


def test_windows_from_different_references_do_not_merge() -> None:
    other = ReferenceProfile(3, profile_columns({"x": [0.0, 1.0, 2.0]}))
    with pytest.raises(ValueError, match="different columns"):
        merge_windows([WindowProfile.build(REFERENCE, batch(5, 1)), WindowProfile.build(other, {})])
    with pytest.raises(ValueError, match="no windows"):
        merge_windows([])


def test_bytes_round_trip() -> None:
    window = WindowProfile.build(REFERENCE, batch(3_000, seed=3), {"score": RNG.random(3_000)})
    data = window.to_bytes()

    assert WindowProfile.from_bytes(data) == window
    empty = WindowProfile.build(REFERENCE, {}, n_rows=4)
    assert WindowProfile.from_bytes(empty.to_bytes()) == empty


def test_bytes_are_compact() -> None:
    window = WindowProfile.build(REFERENCE, batch(10_000, seed=4))
    sketch = numeric(window).sketch
    assert sketch is not None
    # One KLL sketch dominates; the rest of the window is a few hundred bytes.
    assert len(window.to_bytes()) < len(sketch) + 1_000
    assert len(sketch) < 5_000


def test_foreign_bytes_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a window profile"):
        WindowProfile.from_bytes(b'{"n_rows": 1}')
