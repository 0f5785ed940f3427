"""Reference profiles of training data (the format lives in :mod:`orchard_core.profiles`).

This package adds :func:`build_profile`, which profiles pandas frames; everything else is
re-exported from the core library, where the format, merging and window profiles are defined.
"""

from orchard_core.profiles import (
    DEFAULT_BINS,
    DEFAULT_QUANTILES,
    SCHEMA,
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    ReferenceProfile,
    bin_counts,
    merge_profiles,
)
from orchard_pipelines.profiles._build import build_profile

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
