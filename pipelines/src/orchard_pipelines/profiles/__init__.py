"""Reference profiles: compact, JSON-serialisable summaries of a model's training data.

A profile holds, per input column (``features``) and per model output (``outputs``):

- numeric: ``count`` (finite values), ``missing`` (null or non-finite), ``mean``, ``std``
  (population, ddof=0), ``min``, ``max``, ``quantiles`` (keys like ``"0.5"``) and a
  ``histogram`` of ``counts`` over fixed ``edges``;
- categorical: ``count``, ``missing`` and ``value_counts`` (values as strings).

Histogram rule, for anyone binning new data against a stored profile: ``edges`` are the
sorted, distinct cut points (reference quantiles), and ``counts`` has ``len(edges) + 1``
entries. Bin ``i`` holds the values ``v`` with ``edges[i-1] <= v < edges[i]``; the first bin
is open below and the last open above, so every finite value lands in exactly one bin, even
one far outside the reference range. Because the edges travel with the profile, histograms of
any data binned on them can be added up (:func:`merge_profiles`) instead of rescanning rows.
"""

from orchard_pipelines.profiles._build import (
    DEFAULT_BINS,
    DEFAULT_QUANTILES,
    bin_counts,
    build_profile,
)
from orchard_pipelines.profiles._merge import merge_profiles
from orchard_pipelines.profiles._types import (
    SCHEMA,
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    ReferenceProfile,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_QUANTILES",
    "SCHEMA",
    "CategoricalProfile",
    "ColumnProfile",
    "Histogram",
    "NumericProfile",
    "ReferenceProfile",
    "bin_counts",
    "build_profile",
    "merge_profiles",
]
