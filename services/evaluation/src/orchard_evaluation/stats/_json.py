"""Helpers that keep ``to_dict()`` output JSON-safe: finite floats or None, never NaN/inf."""

from __future__ import annotations

import math

__all__ = ["finite"]


def finite(value: float | None) -> float | None:
    """``value`` as a plain float, or None where it is missing, NaN or infinite."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None
