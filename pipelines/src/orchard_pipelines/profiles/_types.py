"""Profile data types and their JSON form (the format is described in the package docs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

SCHEMA: Final = "orchard.reference_profile/v1"


@dataclass(frozen=True)
class Histogram:
    """Counts over fixed cut points; ``len(counts) == len(edges) + 1`` (see module docs)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class NumericProfile:
    """Summary of one numeric column; statistics are None when it has no finite value."""

    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float]
    histogram: Histogram
    kind: Literal["numeric"] = field(default="numeric", init=False)


@dataclass(frozen=True)
class CategoricalProfile:
    """Summary of one categorical column: how often each value occurs."""

    count: int
    missing: int
    value_counts: dict[str, int]
    kind: Literal["categorical"] = field(default="categorical", init=False)


ColumnProfile = NumericProfile | CategoricalProfile


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
            "features": {name: _column_to_dict(p) for name, p in self.features.items()},
            "outputs": {name: _column_to_dict(p) for name, p in self.outputs.items()},
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to strict JSON (no NaN or infinity)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output; rejects other schema versions."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported profile schema {data.get('schema')!r}, want {SCHEMA!r}")
        return cls(
            n_rows=int(data["n_rows"]),
            features={k: _column_from_dict(v) for k, v in data["features"].items()},
            outputs={k: _column_from_dict(v) for k, v in data.get("outputs", {}).items()},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse a profile written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _column_to_dict(profile: ColumnProfile) -> dict[str, Any]:
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
    }


def _column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    if data["kind"] == "categorical":
        return CategoricalProfile(
            count=int(data["count"]),
            missing=int(data["missing"]),
            value_counts={str(k): int(v) for k, v in data["value_counts"].items()},
        )
    if data["kind"] != "numeric":
        raise ValueError(f"unknown column kind {data['kind']!r}")
    histogram = data["histogram"]
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
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
