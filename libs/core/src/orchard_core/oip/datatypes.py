"""The Open Inference Protocol v2 tensor datatypes and their numpy counterparts."""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["DATATYPES", "NUMPY_DTYPE", "datatype_of"]

NUMPY_DTYPE: Final[dict[str, np.dtype]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
DATATYPES: Final[frozenset[str]] = frozenset(NUMPY_DTYPE)

_BY_KIND_SIZE: Final[dict[tuple[str, int], str]] = {
    (dt.kind, dt.itemsize): name for name, dt in NUMPY_DTYPE.items() if name != "BYTES"
}


def datatype_of(array: np.ndarray) -> str:
    """The OIP v2 datatype that represents ``array``'s dtype (strings and objects: BYTES)."""
    dtype = array.dtype
    if dtype.kind in "OUS":
        return "BYTES"
    name = _BY_KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise TypeError(f"no OIP v2 datatype for numpy dtype {dtype}")
    return name
