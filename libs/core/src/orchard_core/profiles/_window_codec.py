"""The binary form of window profiles: a JSON header, then each numeric column's raw sketch."""

from __future__ import annotations

import struct
from typing import Any, Final

from orchard_core.profiles._types import CategoricalProfile, Histogram, NumericWindow, WindowColumn

MAGIC: Final = b"OWP1"
HEADER: Final = struct.Struct("<4sI")  # magic, then the JSON header's length


def column_header(column: WindowColumn, blobs: list[bytes]) -> dict[str, Any]:
    """A column's header entry; its sketch (if numeric) is appended to ``blobs``."""
    if isinstance(column, CategoricalProfile):
        return {"k": "c", "n": column.count, "x": column.missing, "v": column.value_counts}
    sketch = column.sketch or b""
    blobs.append(sketch)
    return {
        "k": "n",
        "n": column.count,
        "x": column.missing,
        "mean": column.mean,
        "m2": column.m2,
        "min": column.min,
        "max": column.max,
        "e": column.histogram.edges,
        "h": column.histogram.counts,
        "d": None if column.distinct is None else list(column.distinct.items()),
        "s": len(sketch),
    }


def column_from_header(data: dict[str, Any], blob: bytes, cursor: list[int]) -> WindowColumn:
    """Rebuild a column; a numeric one takes its sketch at ``cursor[0]`` and advances it."""
    if data["k"] == "c":
        return CategoricalProfile(int(data["n"]), int(data["x"]), dict(data["v"]))
    start = cursor[0]
    cursor[0] = start + int(data["s"])
    distinct = data["d"]
    return NumericWindow(
        count=int(data["n"]),
        missing=int(data["x"]),
        mean=float(data["mean"]),
        m2=float(data["m2"]),
        min=None if data["min"] is None else float(data["min"]),
        max=None if data["max"] is None else float(data["max"]),
        histogram=Histogram(tuple(data["e"]), tuple(data["h"])),
        sketch=blob[start : cursor[0]] or None,
        distinct=None if distinct is None else {float(v): int(c) for v, c in distinct},
    )
