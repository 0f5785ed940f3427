"""Building profiles from data frames (a pandas front end to orchard_core.profiles)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from orchard_core.profiles import (
    DEFAULT_BINS,
    DEFAULT_QUANTILES,
    DEFAULT_SKETCH_K,
    ColumnKind,
    ColumnProfile,
    ReferenceProfile,
    profile_columns,
)


def build_profile(
    features: pd.DataFrame,
    *,
    categorical: Collection[str] = (),
    outputs: pd.DataFrame | None = None,
    categorical_outputs: Collection[str] = (),
    bins: int = DEFAULT_BINS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    edges_from: ReferenceProfile | None = None,
    sketch_k: int = DEFAULT_SKETCH_K,
) -> ReferenceProfile:
    """Profile a frame of features and, optionally, the model outputs for the same rows.

    A column is categorical when it is named in ``categorical`` (``categorical_outputs`` for
    outputs) or its dtype is not numeric (strings, categories, booleans); otherwise numeric.

    Args:
        features: One row per example.
        categorical: Feature columns to treat as categorical even if numeric (e.g. codes).
        outputs: Model outputs, one row per row of ``features``.
        categorical_outputs: Output columns to treat as categorical (e.g. predicted classes).
        bins: Target number of histogram bins; fewer when quantiles coincide.
        quantiles: Quantile levels to record, each in [0, 1].
        edges_from: Bin numeric columns on this profile's edges instead of deriving new ones,
            so the result can be compared with, or merged into, that profile.
        sketch_k: The KLL sketches' ``k`` (see ``orchard_core.profiles.DEFAULT_SKETCH_K``).

    Returns:
        The profile.
    """
    if outputs is not None and len(outputs) != len(features):
        raise ValueError(f"outputs have {len(outputs)} rows, features have {len(features)}")
    return ReferenceProfile(
        n_rows=len(features),
        features=_profile_frame(
            features,
            set(categorical),
            bins,
            quantiles,
            edges_from.features if edges_from else None,
            sketch_k,
        ),
        outputs=(
            {}
            if outputs is None
            else _profile_frame(
                outputs,
                set(categorical_outputs),
                bins,
                quantiles,
                edges_from.outputs if edges_from else None,
                sketch_k,
            )
        ),
    )


def _profile_frame(
    frame: pd.DataFrame,
    categorical: set[str],
    bins: int,
    quantiles: Sequence[float],
    edges_from: dict[str, ColumnProfile] | None,
    sketch_k: int,
) -> dict[str, ColumnProfile]:
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, ColumnKind] = {}
    for name in frame.columns:
        column = frame[name]
        key = str(name)
        if key in categorical or not _is_numeric(column):
            kinds[key] = "categorical"
            values = column.to_numpy(dtype=object)
            values[column.isna().to_numpy()] = None
            columns[key] = values
        else:
            kinds[key] = "numeric"
            columns[key] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return profile_columns(
        columns,
        kinds,
        bins=bins,
        quantiles=quantiles,
        edges_from=edges_from,
        sketch_k=sketch_k,
    )


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
