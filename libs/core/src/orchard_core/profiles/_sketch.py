"""KLL quantile sketches of numeric columns (``datasketches.kll_floats_sketch``).

Why floats, not doubles: a sketch's accuracy (its rank error) depends only on ``k``, and a float
item takes half the bytes of a double, so for the same stored size float sketches can use twice
the ``k``. Seven significant digits are far finer than the rank error the drift statistics see.
Values beyond float32's range are clipped to it.

KLL compaction is randomised (datasketches offers no seed), so statistics read from sketches
that dropped values vary slightly from run to run, within the rank error.

Why ``k = 400``: normalised rank error about 0.7 % (99th percentile), which keeps the normed
Wasserstein distance computed from two sketches within about 0.02 of the exact one (see
orchard_evaluation.drift); a sketch of 10,000 values is about 4 KiB. Sketches of up to
:data:`EXACT_SKETCH_LIMIT` values are built with ``k`` raised to their size, so they keep every
value and statistics on them are exact; that covers every reference of at most 1,000 rows,
where Evidently switches to the Kolmogorov-Smirnov test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
from datasketches import kll_floats_sketch
from numpy.typing import NDArray

SKETCH_KIND: Final = "kll_floats"
DEFAULT_SKETCH_K: Final = 400
EXACT_SKETCH_LIMIT: Final = 1000

_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)


def sketch_values(finite: NDArray[np.float64], k: int = DEFAULT_SKETCH_K) -> bytes:
    """A serialised KLL sketch of ``finite`` values (exact up to :data:`EXACT_SKETCH_LIMIT`).

    ``values`` with repeats stand for weighted values (KLL has no weighted update).
    """
    exact_k = finite.size if finite.size <= EXACT_SKETCH_LIMIT else 0
    sketch = kll_floats_sketch(max(k, exact_k))
    if finite.size:
        sketch.update(np.clip(finite, -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32))
    return bytes(sketch.serialize())


def load_sketch(data: bytes) -> kll_floats_sketch:
    """Deserialise a sketch written by :func:`sketch_values` or :func:`merge_sketches`."""
    return kll_floats_sketch.deserialize(data)


def merge_sketches(sketches: Iterable[bytes | None]) -> bytes | None:
    """Merge serialised sketches.

    The result keeps the largest ``k`` among them, raised (like :func:`sketch_values`) to the
    total size while that is at most :data:`EXACT_SKETCH_LIMIT`, so merging exact sketches of a
    few small buckets stays exact.
    """
    loaded = [load_sketch(s) for s in sketches if s is not None]
    if not loaded:
        return None
    total = sum(s.n for s in loaded)
    exact_k = total if total <= EXACT_SKETCH_LIMIT else 0
    merged = kll_floats_sketch(max(exact_k, *(s.k for s in loaded)))
    for sketch in loaded:
        merged.merge(sketch)
    return bytes(merged.serialize())


def sketch_items(data: bytes) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The sketch as a weighted sample: sorted values and their weights (summing to ``n``)."""
    sketch = load_sketch(data)
    pairs = np.asarray(list(sketch), dtype=np.float64).reshape(-1, 2)
    order = np.argsort(pairs[:, 0], kind="stable")
    return pairs[order, 0], pairs[order, 1]


def sketch_quantiles(data: bytes, levels: Iterable[float]) -> list[float]:
    """Quantiles of a sketch at ``levels`` (each in [0, 1])."""
    return [float(q) for q in load_sketch(data).get_quantiles(list(levels))]
