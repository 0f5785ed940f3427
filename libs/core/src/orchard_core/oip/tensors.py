"""Turning the JSON ``data`` of one OIP v2 tensor into a numpy array, with precise errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from orchard_core.errors import InvalidInput
from orchard_core.oip.datatypes import DATATYPES, NUMPY_DTYPE

__all__ = ["MAX_DIMS", "tensor_from_json", "tensor_to_json"]

MAX_DIMS = 32


def _check_shape(where: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list):
        raise InvalidInput(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"{where}: 'shape' has {len(shape)} dimensions (at most {MAX_DIMS})")
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise InvalidInput(
                f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}"
            )
    return tuple(shape)


def _fit_numeric(where: str, datatype: str, raw: np.ndarray) -> np.ndarray:
    target = NUMPY_DTYPE[datatype]
    kind = raw.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise InvalidInput(f"{where}: datatype BOOL needs true/false values")
        return raw
    if kind in "US":
        raise InvalidInput(f"{where}: datatype {datatype} needs numbers, got strings")
    if kind == "O":
        raise InvalidInput(
            f"{where}: datatype {datatype} needs numbers, got null, objects or integers too large"
        )
    if kind == "b":
        raise InvalidInput(f"{where}: datatype {datatype} needs numbers, got true/false")
    if target.kind in "iu":
        if kind == "f":
            raise InvalidInput(
                f"{where}: datatype {datatype} needs integers, got fractional numbers"
            )
        if raw.size:
            info = np.iinfo(target)
            low, high = int(raw.min()), int(raw.max())
            if low < info.min or high > info.max:
                raise InvalidInput(
                    f"{where}: value out of range for {datatype} [{info.min}, {info.max}]"
                )
        return raw.astype(target, copy=False)
    # Floating targets accept integers and floats. JSON has no inf/NaN, so an infinite value
    # after the cast means the number overflowed the narrower float.
    with np.errstate(over="ignore"):
        fitted = raw.astype(target, copy=False)
    if fitted.size and fitted.dtype != raw.dtype and not np.isfinite(fitted).all():
        limit = float(np.finfo(target).max)
        raise InvalidInput(f"{where}: value out of range for {datatype} (|x| <= {limit:g})")
    return fitted


def _exact_integers(where: str, datatype: str, raw: np.ndarray, data: list[Any]) -> np.ndarray:
    """Integers numpy could not infer as one integer dtype (e.g. 0 and 2**63 together).

    Rare, so plain Python is fine: every element must be a JSON integer that fits.
    """
    items = np.array(data, dtype=object) if raw.dtype.kind == "f" else raw
    flat = items.reshape(-1).tolist()
    if not all(type(x) is int for x in flat):
        if any(isinstance(x, float) for x in flat):
            raise InvalidInput(
                f"{where}: datatype {datatype} needs integers, got fractional numbers"
            )
        raise InvalidInput(
            f"{where}: datatype {datatype} needs numbers, got null, objects or huge integers"
        )
    info = np.iinfo(NUMPY_DTYPE[datatype])
    if flat and (min(flat) < info.min or max(flat) > info.max):
        raise InvalidInput(f"{where}: value out of range for {datatype} [{info.min}, {info.max}]")
    return np.array(flat, dtype=NUMPY_DTYPE[datatype]).reshape(items.shape)


def _bytes_array(where: str, data: list[Any]) -> np.ndarray:
    try:
        raw = np.array(data, dtype=object)
    except ValueError as exc:
        raise InvalidInput(f"{where}: nested 'data' is ragged") from exc
    flat = raw.reshape(-1)
    for item in flat:
        if not isinstance(item, str):
            raise InvalidInput(f"{where}: datatype BYTES needs strings, got {type(item).__name__}")
    return raw


def tensor_from_json(where: str, datatype: Any, shape: Any, data: Any) -> np.ndarray:
    """Validate one tensor's ``datatype``/``shape``/``data`` and return it as a shaped array.

    Raises:
        InvalidInput: unknown datatype, bad shape, ragged data, a length that does not match
            the shape, or values that do not fit the datatype. The message names ``where``.
    """
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        known = ", ".join(sorted(DATATYPES))
        raise InvalidInput(f"{where}: unknown datatype {datatype!r} (one of {known})")
    dims = _check_shape(where, shape)
    if not isinstance(data, list):
        data = [data]  # a scalar is a one-element tensor
    if not data:
        raw = np.empty(0, dtype=NUMPY_DTYPE[datatype])
    elif datatype == "BYTES":
        raw = _bytes_array(where, data)
    else:
        try:
            raw = np.array(data)
        except ValueError as exc:
            raise InvalidInput(f"{where}: nested 'data' is ragged") from exc
        except OverflowError as exc:
            raise InvalidInput(f"{where}: value out of range for {datatype}") from exc
        if NUMPY_DTYPE[datatype].kind in "iu" and raw.dtype.kind in "fO":
            raw = _exact_integers(where, datatype, raw, data)
        raw = _fit_numeric(where, datatype, raw)
    expected = math.prod(dims)
    if raw.size != expected:
        raise InvalidInput(
            f"{where}: shape {list(dims)} needs {expected} elements, but 'data' has {raw.size}"
        )
    return raw.reshape(dims)


def tensor_to_json(name: str, datatype: str, array: np.ndarray) -> dict[str, Any]:
    """One response tensor: flat row-major ``data`` (orjson serializes numeric arrays)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind in "OUS":
        data: Any = [x.decode() if isinstance(x, bytes) else x for x in flat.tolist()]
    elif flat.dtype.byteorder == ">":
        data = flat.astype(flat.dtype.newbyteorder("=")).tolist()
    else:
        data = flat
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
