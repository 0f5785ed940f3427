"""Window profiles: mergeable summaries of production data, binned on a reference's edges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from orchard_core.profiles._columns import bin_counts, categorical_profile
from orchard_core.profiles._merge import merge_categorical
from orchard_core.profiles._sketch import DEFAULT_SKETCH_K, merge_sketches, sketch_values
from orchard_core.profiles._types import (
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    NumericWindow,
    ReferenceProfile,
    WindowColumn,
)
from orchard_core.profiles._values import (
    ColumnValues,
    as_float_array,
    column_length,
    distinct_counts,
    merge_distinct,
)
from orchard_core.profiles._window_codec import (
    HEADER,
    MAGIC,
    column_from_header,
    column_header,
)


@dataclass(frozen=True)
class WindowProfile:
    """Summary of the rows one model version saw in one time bucket (see package docs)."""

    n_rows: int
    features: dict[str, WindowColumn]
    outputs: dict[str, WindowColumn] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        reference: ReferenceProfile,
        features: Mapping[str, ColumnValues],
        outputs: Mapping[str, ColumnValues] | None = None,
        *,
        n_rows: int | None = None,
        sketch_k: int = DEFAULT_SKETCH_K,
    ) -> WindowProfile:
        """Summarise a batch of rows against ``reference`` (its columns, kinds and edges).

        Columns the reference lacks are ignored; reference columns absent from the batch count
        as missing for every row; values that are not finite numbers in a numeric column count
        as missing.

        Args:
            reference: The profile whose columns and histogram edges the window follows.
            features: Feature column name to values, all of one length.
            outputs: Model output columns for the same rows.
            n_rows: Rows in the batch; needed only when no column is given.
            sketch_k: The KLL sketches' ``k``.

        Raises:
            ValueError: The columns differ in length (from each other or from ``n_rows``).
        """
        given = {**features, **(outputs or {})}
        lengths = {column_length(values) for values in given.values()}
        if n_rows is not None:
            lengths.add(n_rows)
        if len(lengths) > 1:
            raise ValueError(f"batch columns differ in length: {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        return cls(
            n_rows=rows,
            features=_window_columns(reference.features, features, rows, sketch_k),
            outputs=_window_columns(reference.outputs, outputs or {}, rows, sketch_k),
        )

    def merge(self, other: WindowProfile) -> WindowProfile:
        """The window of both windows' rows (see :func:`merge_windows`)."""
        return merge_windows([self, other])

    def to_bytes(self) -> bytes:
        """Compact binary form: a JSON header followed by the raw sketches."""
        blobs: list[bytes] = []
        header = {
            "n_rows": self.n_rows,
            "features": {k: column_header(c, blobs) for k, c in self.features.items()},
            "outputs": {k: column_header(c, blobs) for k, c in self.outputs.items()},
        }
        encoded = orjson.dumps(header)
        return b"".join([HEADER.pack(MAGIC, len(encoded)), encoded, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowProfile:
        """Parse :meth:`to_bytes` output.

        Raises:
            ValueError: The bytes are not a window profile of this format.
        """
        if len(data) < HEADER.size:
            raise ValueError("not a window profile: too short")
        magic, length = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ValueError(f"not a window profile: magic {magic!r}, want {MAGIC!r}")
        start = HEADER.size + length
        header = orjson.loads(data[HEADER.size : start])
        # Sketches follow the header in column order; each column header gives its length.
        cursor = [start]
        return cls(
            n_rows=int(header["n_rows"]),
            features={
                k: column_from_header(v, data, cursor) for k, v in header["features"].items()
            },
            outputs={k: column_from_header(v, data, cursor) for k, v in header["outputs"].items()},
        )


def merge_windows(windows: Iterable[WindowProfile]) -> WindowProfile:
    """Merge windows binned on the same reference: counts exactly, sketches by KLL merge.

    Raises:
        ValueError: No windows, or windows with different columns, kinds or edges.
    """
    items = list(windows)
    if not items:
        raise ValueError("no windows to merge")
    if len(items) == 1:
        return items[0]
    return WindowProfile(
        n_rows=sum(w.n_rows for w in items),
        features=_merge_parts([w.features for w in items]),
        outputs=_merge_parts([w.outputs for w in items]),
    )


def _window_columns(
    reference: Mapping[str, ColumnProfile],
    batch: Mapping[str, ColumnValues],
    rows: int,
    sketch_k: int,
) -> dict[str, WindowColumn]:
    columns: dict[str, WindowColumn] = {}
    for name, profile in reference.items():
        values = batch.get(name)
        if isinstance(profile, CategoricalProfile):
            columns[name] = (
                CategoricalProfile(0, rows, {}) if values is None else categorical_profile(values)
            )
        else:
            columns[name] = _numeric_window(values, rows, profile, sketch_k)
    return columns


def _numeric_window(
    values: ColumnValues | None, rows: int, reference: NumericProfile, sketch_k: int
) -> NumericWindow:
    edges = reference.histogram.edges
    array = np.empty(0) if values is None else as_float_array(values)
    finite = array[~np.isnan(array)]
    histogram = Histogram(edges, tuple(bin_counts(finite, edges).tolist()))
    if finite.size == 0:
        return NumericWindow(0, rows, 0.0, 0.0, None, None, histogram, None, {})
    mean = float(finite.mean())
    # Exact value counts make a sketch redundant; merges rebuild one if the counts overflow.
    distinct = distinct_counts(finite)
    return NumericWindow(
        count=int(finite.size),
        missing=rows - int(finite.size),
        mean=mean,
        m2=float(np.square(finite - mean).sum()),
        min=float(finite.min()),
        max=float(finite.max()),
        histogram=histogram,
        sketch=None if distinct is not None else sketch_values(finite, sketch_k),
        distinct=distinct,
    )


def _merge_parts(parts: list[dict[str, WindowColumn]]) -> dict[str, WindowColumn]:
    names = parts[0].keys()
    if any(p.keys() != names for p in parts):
        raise ValueError("windows cover different columns; build them from the same reference")
    merged: dict[str, WindowColumn] = {}
    for name in names:
        columns = [p[name] for p in parts]
        numeric = [c for c in columns if isinstance(c, NumericWindow)]
        if not numeric:
            merged[name] = _merge_categorical(
                [c for c in columns if isinstance(c, CategoricalProfile)]
            )
        elif len(numeric) == len(columns):
            merged[name] = _merge_numeric(name, numeric)
        else:
            raise ValueError(f"column {name!r} is numeric in some windows, categorical in others")
    return merged


def _merge_categorical(columns: list[CategoricalProfile]) -> CategoricalProfile:
    result = columns[0]
    for column in columns[1:]:
        result = merge_categorical(result, column)
    return result


def _merge_numeric(name: str, columns: list[NumericWindow]) -> NumericWindow:
    edges = columns[0].histogram.edges
    if any(c.histogram.edges != edges for c in columns):
        raise ValueError(f"column {name!r} was binned on different edges")
    counts = np.sum([c.histogram.counts for c in columns], axis=0)
    present = [c for c in columns if c.count]
    missing = sum(c.missing for c in columns)
    histogram = Histogram(edges, tuple(counts.tolist()))
    if not present:
        return NumericWindow(0, missing, 0.0, 0.0, None, None, histogram, None, {})
    # Chan et al.'s pairwise update, vectorised: exact and stable for any split of the rows.
    n = np.array([c.count for c in present], dtype=np.float64)
    means = np.array([c.mean for c in present])
    total = n.sum()
    mean = float((n * means).sum() / total)
    m2 = float(sum(c.m2 for c in present) + (n * np.square(means - mean)).sum())
    distinct: dict[float, int] | None = {}
    for c in present:
        distinct = merge_distinct(distinct, c.distinct)
    return NumericWindow(
        count=int(total),
        missing=missing,
        mean=mean,
        m2=m2,
        min=min(c.min for c in present if c.min is not None),
        max=max(c.max for c in present if c.max is not None),
        histogram=histogram,
        sketch=None if distinct is not None else merge_sketches(_sketches(present)),
        distinct=distinct,
    )


def _sketches(columns: list[NumericWindow]) -> Iterable[bytes | None]:
    for column in columns:
        if column.sketch is None and column.distinct is not None:
            values = np.fromiter(column.distinct.keys(), dtype=np.float64)
            counts = np.fromiter(column.distinct.values(), dtype=np.int64)
            yield sketch_values(np.repeat(values, counts))
        else:
            yield column.sketch
