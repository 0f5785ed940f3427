"""Profile data types and their JSON form (the format is described in the package docs)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from orchard_core.profiles._sketch import SKETCH_KIND

SCHEMA: Final = "orchard.reference_profile/v2"
SCHEMA_V1: Final = "orchard.reference_profile/v1"
READABLE_SCHEMAS: Final = (SCHEMA, SCHEMA_V1)


@dataclass(frozen=True)
class Histogram:
    """Counts over fixed cut points; ``len(counts) == len(edges) + 1`` (see package docs)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class NumericProfile:
    """Summary of one numeric column; statistics are None when it has no finite value.

    ``sketch`` is a serialised KLL sketch of the finite values (None in v1 profiles);
    ``distinct`` the exact count of each value while there are at most
    :data:`~orchard_core.profiles.DISTINCT_LIMIT` of them, else None (also in v1 profiles).
    """

    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float]
    histogram: Histogram
    sketch: bytes | None = None
    distinct: dict[float, int] | None = None
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def n_unique(self) -> int | None:
        """Number of distinct finite values, or None when above the limit or unknown."""
        return None if self.distinct is None else len(self.distinct)


@dataclass(frozen=True)
class CategoricalProfile:
    """Summary of one categorical column: how often each value occurs."""

    count: int
    missing: int
    value_counts: dict[str, int]
    kind: Literal["categorical"] = field(default="categorical", init=False)


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class NumericWindow:
    """One numeric column of a window.

    ``mean`` and ``m2`` (sum of squared deviations) are 0.0 and ``min``/``max`` None while it
    has no finite value. ``sketch`` is None while ``distinct`` (exact counts, at most
    :data:`~orchard_core.profiles.DISTINCT_LIMIT` values) describes the values by itself.
    """

    count: int
    missing: int
    mean: float
    m2: float
    min: float | None
    max: float | None
    histogram: Histogram
    sketch: bytes | None
    distinct: dict[float, int] | None
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def std(self) -> float | None:
        """Population standard deviation (ddof=0), None without values."""
        return math.sqrt(self.m2 / self.count) if self.count else None

    @property
    def n_unique(self) -> int | None:
        """Number of distinct finite values, or None when above the limit."""
        return None if self.distinct is None else len(self.distinct)


WindowColumn = NumericWindow | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Profiles of a data set's feature columns and, optionally, of a model's outputs."""

    n_rows: int
    features: dict[str, ColumnProfile]
    outputs: dict[str, ColumnProfile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-compatible data, with the ``schema`` version first."""
        return {
            "schema": SCHEMA,
            "n_rows": self.n_rows,
            "features": {name: column_to_dict(p) for name, p in self.features.items()},
            "outputs": {name: column_to_dict(p) for name, p in self.outputs.items()},
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to strict JSON (no NaN or infinity)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output, v2 or v1; rejects other schemas."""
        if data.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(
                f"unsupported profile schema {data.get('schema')!r}, want one of "
                f"{list(READABLE_SCHEMAS)}"
            )
        return cls(
            n_rows=int(data["n_rows"]),
            features={k: column_from_dict(v) for k, v in data["features"].items()},
            outputs={k: column_from_dict(v) for k, v in data.get("outputs", {}).items()},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse a profile written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def column_to_dict(profile: ColumnProfile) -> dict[str, Any]:
    """One column's JSON form."""
    if isinstance(profile, CategoricalProfile):
        return {
            "kind": profile.kind,
            "count": profile.count,
            "missing": profile.missing,
            "value_counts": dict(profile.value_counts),
        }
    return {
        "kind": profile.kind,
        "count": profile.count,
        "missing": profile.missing,
        "mean": profile.mean,
        "std": profile.std,
        "min": profile.min,
        "max": profile.max,
        "quantiles": dict(profile.quantiles),
        "histogram": {
            "edges": list(profile.histogram.edges),
            "counts": list(profile.histogram.counts),
        },
        "distinct": (
            None if profile.distinct is None else [[v, c] for v, c in profile.distinct.items()]
        ),
        "sketch": (
            None
            if profile.sketch is None
            else {"kind": SKETCH_KIND, "base64": base64.b64encode(profile.sketch).decode("ascii")}
        ),
    }


def column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    """Parse one column's JSON form (v1 columns have no ``distinct`` and no ``sketch``)."""
    if data["kind"] == "categorical":
        return CategoricalProfile(
            count=int(data["count"]),
            missing=int(data["missing"]),
            value_counts={str(k): int(v) for k, v in data["value_counts"].items()},
        )
    if data["kind"] != "numeric":
        raise ValueError(f"unknown column kind {data['kind']!r}")
    histogram = data["histogram"]
    distinct = data.get("distinct")
    return NumericProfile(
        count=int(data["count"]),
        missing=int(data["missing"]),
        mean=_optional_float(data["mean"]),
        std=_optional_float(data["std"]),
        min=_optional_float(data["min"]),
        max=_optional_float(data["max"]),
        quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
        histogram=Histogram(
            edges=tuple(float(e) for e in histogram["edges"]),
            counts=tuple(int(c) for c in histogram["counts"]),
        ),
        sketch=_sketch_from_dict(data.get("sketch")),
        distinct=None if distinct is None else {float(v): int(c) for v, c in distinct},
    )


def _sketch_from_dict(data: Mapping[str, Any] | None) -> bytes | None:
    if data is None:
        return None
    if data.get("kind") != SKETCH_KIND:
        raise ValueError(f"unknown sketch kind {data.get('kind')!r}, want {SKETCH_KIND!r}")
    return base64.b64decode(data["base64"], validate=True)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
