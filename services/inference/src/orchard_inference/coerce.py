"""Fitting request values to the dtype a model declares, with messages a caller can act on."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchard_core import InvalidInput

__all__ = ["describe", "fit_dtype", "values_array"]

_KIND_WORDS = {
    "b": "true/false",
    "i": "integers",
    "u": "integers",
    "f": "fractional numbers",
    "c": "complex numbers",
    "U": "strings",
    "S": "strings",
    "M": "timestamps",
}


def describe(array: np.ndarray) -> str:
    """What kind of values ``array`` holds, in words ("strings", "integers", ...)."""
    if array.dtype.kind != "O":
        return _KIND_WORDS.get(array.dtype.kind, str(array.dtype))
    for item in array.reshape(-1):
        if item is None:
            return "null values"
        if isinstance(item, str | bytes):
            return "strings"
        if not isinstance(item, int | float) or isinstance(item, bool):
            return f"{type(item).__name__} values"
    return "integers too large"


def values_array(where: str, values: list[Any]) -> np.ndarray:
    """JSON values (KServe v1 rows or a column of them) as a numpy array."""
    try:
        return np.array(values)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{where}: values are ragged or mixed ({exc})") from None


def _numbers_with_nulls(array: np.ndarray) -> np.ndarray | None:
    """An object array of numbers and nulls as float64 with NaN, else None."""
    flat = array.reshape(-1)
    for item in flat:
        if item is not None and (isinstance(item, bool) or not isinstance(item, int | float)):
            return None
    return np.array([np.nan if x is None else x for x in flat], dtype=np.float64).reshape(
        array.shape
    )


def fit_dtype(where: str, array: np.ndarray, dtype: np.dtype, expected: str) -> np.ndarray:
    """Cast ``array`` to ``dtype`` when that loses nothing, else raise ``InvalidInput``.

    Numbers of any width cast to a numeric dtype; fractional numbers fit an integer dtype
    only when whole. Strings never become numbers, nor numbers strings.

    Args:
        where: names the input in messages (``input 'age'``).
        array: the values as decoded from the request.
        dtype: the dtype the model declares.
        expected: how messages name what is expected (``column type long``, ``FP32``).
    """
    have = array.dtype.kind
    want = dtype.kind
    if want == "O":  # strings or bytes (object arrays are checked: v1 rows may hold anything)
        if have in "US":
            return array.astype(object)
        if have == "O" and all(x is None or isinstance(x, str | bytes) for x in array.flat):
            return array
        raise InvalidInput(f"{where}: needs strings ({expected}), got {describe(array)}")
    if array.dtype == dtype:
        return array
    if want == "b":
        if have == "b":
            return array
        raise InvalidInput(f"{where}: needs true/false ({expected}), got {describe(array)}")
    if want == "M":
        try:
            return array.astype(dtype)
        except (ValueError, TypeError):
            raise InvalidInput(
                f"{where}: needs timestamps ({expected}), got {describe(array)}"
            ) from None
    if have == "O" and want == "f":
        numbers = _numbers_with_nulls(array)  # v1 rows may carry null for a missing value
        if numbers is not None:
            return _narrowed(where, numbers, dtype, expected)
    if have not in "iuf":
        raise InvalidInput(f"{where}: needs numbers ({expected}), got {describe(array)}")
    if (
        want in "iu"
        and have == "f"
        and not (np.all(np.isfinite(array)) and np.all(np.mod(array, 1) == 0))
    ):
        raise InvalidInput(f"{where}: needs integers ({expected}), got fractional numbers")
    if want in "iu" and array.size:
        info = np.iinfo(dtype)
        # info.max + 1 is a power of two, exact as a float (info.max is not).
        if have == "f":  # compared as float64: a bound as FP16 would overflow
            least, most = float(array.min()), float(array.max())
            out = least < info.min or most >= float(info.max + 1)
        else:
            out = int(array.min()) < info.min or int(array.max()) > info.max
        if out:
            raise InvalidInput(
                f"{where}: value out of range for {expected} [{info.min}, {info.max}]"
            )
    if want == "f":
        return _narrowed(where, array, dtype, expected)
    return array.astype(dtype, copy=False)


def _narrowed(where: str, array: np.ndarray, dtype: np.dtype, expected: str) -> np.ndarray:
    """``array`` as the float ``dtype``; a finite value too large for it is ``InvalidInput``."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = array.astype(dtype, copy=False)
    if result.size and array.dtype.kind == "f" and result.dtype.itemsize < array.dtype.itemsize:
        overflowed = np.isinf(result) & np.isfinite(array)
    elif result.size and array.dtype.kind in "iu":
        overflowed = np.isinf(result)
    else:
        return result
    if np.any(overflowed):
        raise InvalidInput(f"{where}: value out of range for {expected}")
    return result
