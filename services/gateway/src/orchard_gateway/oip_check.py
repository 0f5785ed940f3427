"""Checking an OIP v2 inference request before it goes upstream, without building its arrays.

The gateway forwards the caller's bytes; it validates them only to answer bad input itself
(400, with ``decode_infer_request``'s precise message) and reads the request's
``parameters`` (a sticky unit may be one). Building numpy arrays for that was about a fifth
of the gateway's own time per prediction. :func:`infer_parameters` accepts, in plain Python,
requests that are plainly valid (flat ``data`` of the right length whose every value fits the
datatype without rounding questions); anything else, every bad request included, goes
through ``decode_infer_request``, so the answer to bad input is exactly the decoder's.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Final

import orjson

from orchard_core.oip import decode_infer_request
from orchard_core.oip.tensors import MAX_DIMS

__all__ = ["FLOAT_MAX", "INTEGER_RANGES", "infer_parameters"]

# Longer data goes to the decoder: numpy's conversion in C beats a Python loop there.
_MAX_CHECKED_VALUES: Final = 1024
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


# Per integer datatype, the integers accepted: its range, within int64's too (numpy infers
# int64 for such a list, never uint64 or object).
INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (_INT64_MIN, _INT64_MAX),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, _INT64_MAX),
}
# Per float datatype, its largest finite value: a number at most that stays finite when cast.
FLOAT_MAX: Final[dict[str, float]] = {
    "FP16": 65504.0,
    "FP32": 3.4028234663852886e38,
    "FP64": sys.float_info.max,
}


def _plain_values(datatype: str, data: list[Any]) -> bool:
    """True when every value of flat ``data`` certainly fits ``datatype``."""
    limit = FLOAT_MAX.get(datatype)
    if limit is not None:
        for value in data:
            kind = type(value)
            if kind is float:
                if not -limit <= value <= limit:  # also refuses NaN and infinities
                    return False
            elif kind is not int or not _INT64_MIN <= value <= _INT64_MAX or abs(value) > limit:
                return False
        return True
    bounds = INTEGER_RANGES.get(datatype)
    if bounds is not None:
        low, high = bounds
        return all(type(value) is int and low <= value <= high for value in data)
    if datatype == "BOOL":
        return all(type(value) is bool for value in data)
    if datatype == "BYTES":
        return all(type(value) is str for value in data)
    return False


def _plain_tensor(raw: Any) -> str | None:
    """The tensor's name when it is plainly valid, else None."""
    if type(raw) is not dict:
        return None
    name, shape, datatype, data = (
        raw.get("name"),
        raw.get("shape"),
        raw.get("datatype"),
        raw.get("data"),
    )
    if type(name) is not str or not name or type(shape) is not list or type(data) is not list:
        return None
    if type(datatype) is not str or len(shape) > MAX_DIMS or len(data) > _MAX_CHECKED_VALUES:
        return None
    if not all(type(dim) is int and dim >= 0 for dim in shape):
        return None
    if math.prod(shape) != len(data) or not _plain_values(datatype, data):
        return None
    parameters = raw.get("parameters")
    return name if parameters is None or type(parameters) is dict else None


def _plain_request(payload: Any) -> bool:
    if type(payload) is not dict:
        return False
    inputs = payload.get("inputs")
    if type(inputs) is not list or not inputs:
        return False
    names = set()
    for raw in inputs:
        name = _plain_tensor(raw)
        if name is None or name in names:
            return False
        names.add(name)
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        return False
    parameters = payload.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        return False
    outputs = payload.get("outputs")
    if outputs is None:
        return True
    if type(outputs) is not list:
        return False
    for item in outputs:
        if type(item) is not dict or type(item.get("name")) is not str:
            return False
        if item.get("parameters") is not None and type(item.get("parameters")) is not dict:
            return False
    return True


def infer_parameters(body: bytes) -> dict[str, Any] | None:
    """Validate an OIP v2 inference request as ``decode_infer_request`` does; return its
    request-level ``parameters`` (None when it has none).

    Raises:
        InvalidInput: the request is not valid; the message is the decoder's.
    """
    payload: Any = None
    # Not JSON: the decoder says what is wrong with it.
    with contextlib.suppress(orjson.JSONDecodeError):
        payload = orjson.loads(body) if body else None
    if _plain_request(payload):
        parameters: dict[str, Any] | None = payload.get("parameters")
        return parameters
    return decode_infer_request(body).parameters
