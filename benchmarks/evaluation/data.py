"""The benchmark's data: 20 features of synthetic traffic, a reference and shifted windows.

15 numeric features (ten continuous, three integer-valued with many values, two with at most
four values, so Evidently's value-binned paths run too) and 5 categorical ones; the current
windows carry a covariate shift in six of them. numpy only, one seed: every process that
regenerates a data set gets the same rows.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "NUMERIC",
    "SHIFTED",
    "columns",
    "kinds",
]

CONTINUOUS: Final = tuple(f"x{i:02d}" for i in range(10))
INTEGER: Final = ("count_a", "count_b", "count_c")
FEW_VALUES: Final = ("level", "flag")
NUMERIC: Final = CONTINUOUS + INTEGER + FEW_VALUES
CATEGORIES: Final = {
    "channel": ("web", "app", "store", "phone"),
    "region": ("north", "south", "east", "west", "centre"),
    "segment": ("retail", "business", "premium"),
    "device": ("ios", "android", "desktop", "tablet", "other", "tv"),
    "plan": ("free", "basic", "plus", "pro", "team", "enterprise", "trial", "legacy"),
}
CATEGORICAL: Final = tuple(CATEGORIES)
FEATURES: Final = NUMERIC + CATEGORICAL
# The features the current windows shift; the other 14 come from the reference distribution.
SHIFTED: Final = ("x00", "x03", "x07", "count_a", "flag", "plan")


def kinds() -> dict[str, Any]:
    """Each feature's kind, as ``profile_columns`` and Evidently's DataDefinition take it."""
    return {name: "numeric" if name in NUMERIC else "categorical" for name in FEATURES}


def columns(n: int, seed: int, *, shifted: bool) -> dict[str, NDArray[Any]]:
    """``n`` rows of the 20 features, column by column; ``shifted`` applies the drift."""
    rng = np.random.default_rng(seed)
    shift = {name: (1.0 if shifted and name in SHIFTED else 0.0) for name in FEATURES}
    data: dict[str, NDArray[Any]] = {}
    for i, name in enumerate(CONTINUOUS):
        match i % 4:
            case 0:
                data[name] = rng.normal(10.0 * i + 0.3 * shift[name], 1.0 + i / 10, n)
            case 1:
                data[name] = rng.lognormal(2.0 + 0.25 * shift[name], 0.5, n)
            case 2:
                data[name] = rng.beta(2.0, 5.0, n)
            case _:
                data[name] = rng.exponential(3.0 * (1 + 0.5 * shift[name]), n)
    data["count_a"] = rng.poisson(20 + 4 * shift["count_a"], n).astype(np.int64)
    data["count_b"] = rng.integers(0, 500, n)
    data["count_c"] = np.round(rng.gamma(3.0, 10.0, n)).astype(np.int64)
    data["level"] = rng.choice(4, n, p=(0.4, 0.3, 0.2, 0.1)).astype(np.int64)
    data["flag"] = (rng.random(n) < 0.2 + 0.15 * shift["flag"]).astype(np.int64)
    for name, values in CATEGORIES.items():
        weights = np.linspace(2.0, 1.0, len(values))
        if shift[name]:
            weights = weights[::-1]  # the rare plans become the common ones
        data[name] = rng.choice(np.asarray(values, dtype=object), n, p=weights / weights.sum())
    return data
