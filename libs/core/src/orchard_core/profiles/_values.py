"""Turning raw column values into float arrays and category counts, never raising on bad input."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

ColumnKind: TypeAlias = Literal["numeric", "categorical"]
ColumnValues: TypeAlias = ArrayLike | Sequence[Any]

# Evidently reads a numeric column's number of distinct values (5 and 20 are its cut-offs), so
# numeric profiles keep exact value counts up to this many distinct values.
DISTINCT_LIMIT: Final = 20

_NUMERIC_DTYPES: Final = "biuf"


def as_float_array(values: ColumnValues) -> NDArray[np.float64]:
    """``values`` as float64; anything that is not a finite number becomes NaN (missing).

    Numbers are ints, floats and booleans (numpy's or Python's); strings, None, objects and
    infinities are missing, so a bad value in a production batch is counted, never raised.
    """
    array = _as_array(values)
    if array.dtype.kind in _NUMERIC_DTYPES:
        result = array.astype(np.float64, copy=False).ravel()
    else:
        result = np.fromiter(
            (_to_float(v) for v in array.ravel()), dtype=np.float64, count=array.size
        )
    if not np.isfinite(result).all():
        result = np.where(np.isfinite(result), result, np.nan)
    return result


def category_counts(values: ColumnValues) -> tuple[dict[str, int], int]:
    """Counts of each category (as its canonical text, see :func:`category_key`) and missing."""
    array = _as_array(values).ravel()
    if array.dtype.kind in "Uiub":
        uniques, counts = np.unique(array, return_counts=True)
        return _canonical({u.item(): int(c) for u, c in zip(uniques, counts, strict=True)})
    if array.dtype.kind == "f":
        finite = array[~np.isnan(array)]
        uniques, counts = np.unique(finite, return_counts=True)
        found, _ = _canonical({u.item(): int(c) for u, c in zip(uniques, counts, strict=True)})
        return found, int(array.size - finite.size)
    return _canonical(Counter(array.tolist()))


def column_length(values: ColumnValues) -> int:
    """Number of values in a column."""
    if isinstance(values, np.ndarray):
        return int(values.size)
    if isinstance(values, Sequence):
        return len(values)
    return int(np.size(values))


def category_key(value: Any) -> str | None:
    """Canonical text of a category, or None when missing (None or NaN).

    Integers and integral floats read as integer text (``1`` and ``1.0`` are both ``"1"``, as
    JSON may carry either), other floats as ``repr``, booleans as ``"True"``/``"False"``.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def distinct_counts(finite: NDArray[np.float64]) -> dict[float, int] | None:
    """Exact counts of each value, or None when there are more than :data:`DISTINCT_LIMIT`."""
    if finite.size == 0:
        return {}
    uniques, counts = np.unique(finite, return_counts=True)
    if uniques.size > DISTINCT_LIMIT:
        return None
    return {float(u): int(c) for u, c in zip(uniques, counts, strict=True)}


def merge_distinct(
    first: dict[float, int] | None, second: dict[float, int] | None
) -> dict[float, int] | None:
    """Union of two distinct-value counts; None (too many values) wins."""
    if first is None or second is None:
        return None
    merged = dict(first)
    for value, count in second.items():
        merged[value] = merged.get(value, 0) + count
    if len(merged) > DISTINCT_LIMIT:
        return None
    return dict(sorted(merged.items()))


def sort_counts(counts: dict[str, int]) -> dict[str, int]:
    """Most frequent first, ties by value, so equal data always serialises identically."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _canonical(raw: dict[Any, int]) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    missing = 0
    for value, count in raw.items():
        key = category_key(value)
        if key is None:
            missing += count
        else:
            counts[key] = counts.get(key, 0) + count
    return counts, missing


def _to_float(value: Any) -> float:
    if isinstance(value, int | float | np.integer | np.floating | np.bool_):
        return float(value)
    return math.nan


def _as_array(values: ColumnValues) -> np.ndarray[Any, np.dtype[Any]]:
    if isinstance(values, np.ndarray):
        return values
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged nested sequences
        return _object_array(values)
    if array.dtype.kind in "biuf":
        return array
    # numpy turns [1.0, "a"] into strings; keep each value's own type instead.
    return _object_array(values)


def _object_array(values: Any) -> np.ndarray[Any, np.dtype[np.object_]]:
    items = list(values)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
