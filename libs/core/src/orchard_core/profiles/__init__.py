"""Profiles: compact, mergeable summaries of a model's data, shared by pipelines and services.

A :class:`ReferenceProfile` (built from training data, stored as JSON next to the model) holds,
per input column (``features``) and per model output (``outputs``):

- numeric: ``count`` (finite values), ``missing`` (null, non-finite or not a number), ``mean``,
  ``std`` (population, ddof=0), ``min``, ``max``, ``quantiles`` (keys like ``"0.5"``), a
  ``histogram`` of ``counts`` over fixed ``edges``, since v2 a KLL ``sketch`` of the values
  (``kll_floats``, base64; see :data:`DEFAULT_SKETCH_K`) and ``distinct``: exact
  ``[value, count]`` pairs while the column has at most :data:`DISTINCT_LIMIT` distinct values,
  else null;
- categorical: ``count``, ``missing`` and ``value_counts`` (values as canonical text: integers
  and integral floats as integer text, other floats by ``repr``, booleans ``True``/``False``).

Schema ``orchard.reference_profile/v2``; v1 profiles (no ``sketch``, no ``distinct``) are still
read, and statistics that need a sketch fall back to the histogram and quantiles.

A :class:`WindowProfile` summarises the production rows of one model version in one time
bucket, binned on its reference's edges: per numeric column count, missing, mean and ``m2``,
min, max, histogram counts, distinct values and a sketch; per categorical column the same as
above. Windows merge exactly (counts) or by KLL merge (sketches), so a statistic over any time
range is a merge of stored buckets, never a rescan of rows; :meth:`WindowProfile.to_bytes` is
the stored form.

Histogram rule, for anyone binning new data against a stored profile: ``edges`` are the
sorted, distinct cut points (reference quantiles), and ``counts`` has ``len(edges) + 1``
entries. Bin ``i`` holds the values ``v`` with ``edges[i-1] <= v < edges[i]``; the first bin
is open below and the last open above, so every finite value lands in exactly one bin, even
one far outside the reference range. Because the edges travel with the profile, histograms of
any data binned on them can be added up instead of rescanning rows.
"""

from orchard_core.profiles._columns import (
    DEFAULT_BINS,
    DEFAULT_QUANTILES,
    bin_counts,
    categorical_profile,
    numeric_profile,
    profile_columns,
)
from orchard_core.profiles._merge import merge_profiles
from orchard_core.profiles._sketch import (
    DEFAULT_SKETCH_K,
    EXACT_SKETCH_LIMIT,
    SKETCH_KIND,
    load_sketch,
    merge_sketches,
    sketch_items,
    sketch_quantiles,
    sketch_values,
)
from orchard_core.profiles._types import (
    SCHEMA,
    SCHEMA_V1,
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    NumericProfile,
    NumericWindow,
    ReferenceProfile,
    WindowColumn,
)
from orchard_core.profiles._values import (
    DISTINCT_LIMIT,
    ColumnKind,
    ColumnValues,
    as_float_array,
    category_key,
)
from orchard_core.profiles._window import WindowProfile, merge_windows

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_QUANTILES",
    "DEFAULT_SKETCH_K",
    "DISTINCT_LIMIT",
    "EXACT_SKETCH_LIMIT",
    "SCHEMA",
    "SCHEMA_V1",
    "SKETCH_KIND",
    "CategoricalProfile",
    "ColumnKind",
    "ColumnProfile",
    "ColumnValues",
    "Histogram",
    "NumericProfile",
    "NumericWindow",
    "ReferenceProfile",
    "WindowColumn",
    "WindowProfile",
    "as_float_array",
    "bin_counts",
    "categorical_profile",
    "category_key",
    "load_sketch",
    "merge_profiles",
    "merge_sketches",
    "merge_windows",
    "numeric_profile",
    "profile_columns",
    "sketch_items",
    "sketch_quantiles",
    "sketch_values",
]
