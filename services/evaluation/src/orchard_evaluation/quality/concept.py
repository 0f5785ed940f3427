"""Concept drift on the error stream, with river's detectors.

A rise in a model's error rate while its inputs look unchanged is the signature of concept
drift: P(label | inputs) has moved. The detectors here run over the chronologically ordered
errors of labeled predictions (0/1 misclassification, or absolute error for regressors). Each
call builds a fresh detector and none of them draws random numbers, so re-running over the
same window gives the same result.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import drift
from river.drift import binary

from orchard_evaluation.quality._common import FloatArray
from orchard_evaluation.quality.error_stream import ErrorStream

ParamValue = int | float | str


@dataclass(frozen=True)
class _Param:
    """One detector argument: its type, its valid range and how to say so."""

    kind: type[int] | type[float] | type[str]
    valid: Callable[[Any], bool]
    expected: str

    def parse(self, value: object) -> ParamValue | None:
        """The value as a plain int, float or str (JSON-safe), or None when invalid."""
        # bool is an Integral, but `delta=True` is a mistake, not a number.
        if isinstance(value, bool):
            return None
        parsed: ParamValue
        if self.kind is int and isinstance(value, numbers.Integral):
            parsed = int(value)
        elif self.kind is float and isinstance(value, numbers.Real):
            parsed = float(value)
        elif self.kind is str and isinstance(value, str):
            parsed = value
        else:
            return None
        return parsed if self.valid(parsed) else None


_POSITIVE_INT = _Param(int, lambda v: v > 0, "a positive integer")
_POSITIVE = _Param(float, lambda v: 0 < v < math.inf, "a number > 0")


@dataclass(frozen=True)
class _Method:
    factory: Callable[..., Any]
    params: dict[str, _Param]
    binary_only: bool = False


_METHODS: dict[str, _Method] = {
    "adwin": _Method(
        drift.ADWIN,
        {
            "delta": _Param(float, lambda v: 0 < v < 1, "a number in (0, 1)"),
            "clock": _POSITIVE_INT,
            "max_buckets": _POSITIVE_INT,
            "min_window_length": _POSITIVE_INT,
            "grace_period": _POSITIVE_INT,
        },
    ),
    "page_hinkley": _Method(
        drift.PageHinkley,
        {
            "min_instances": _POSITIVE_INT,
            "delta": _Param(float, lambda v: 0 <= v < math.inf, "a number >= 0"),
            "threshold": _POSITIVE,
            "alpha": _Param(float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
            "mode": _Param(str, lambda v: v in ("up", "down", "both"), "'up', 'down' or 'both'"),
        },
    ),
    "ddm": _Method(
        binary.DDM,
        {
            "warm_start": _POSITIVE_INT,
            "warning_threshold": _POSITIVE,
            "drift_threshold": _POSITIVE,
        },
        binary_only=True,
    ),
}


@dataclass(frozen=True)
class ConceptDriftResult:
    """What a detector saw on one error stream.

    ``error_rate_before``/``error_rate_after`` are the mean error (the error rate of a 0/1
    stream, the MAE of a regressor's) before the first detection and from it on; "before"
    includes the detection delay's worth of changed errors. ADWIN, and Page-Hinkley in its
    default ``mode="both"``, also fire when errors fall: compare the two for the direction.
    ADWIN tests every ``clock`` points, so its detections land on that grid.
    """

    method: str
    params: dict[str, ParamValue]
    n_observations: int
    drift_detected: bool
    n_detections: int
    first_detection_index: int | None
    first_detection_ts: float | None
    last_detection_index: int | None
    last_detection_ts: float | None
    error_rate_before: float | None
    error_rate_after: float | None
    detection_indices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "n_observations": self.n_observations,
            "drift_detected": self.drift_detected,
            "n_detections": self.n_detections,
            "first_detection_index": self.first_detection_index,
            "first_detection_ts": self.first_detection_ts,
            "last_detection_index": self.last_detection_index,
            "last_detection_ts": self.last_detection_ts,
            "error_rate_before": self.error_rate_before,
            "error_rate_after": self.error_rate_after,
            "detection_indices": list(self.detection_indices),
        }


def detector_methods() -> tuple[str, ...]:
    """Names accepted by :func:`detect_concept_drift`."""
    return tuple(_METHODS)


def detect_concept_drift(
    stream: ErrorStream,
    method: str = "adwin",
    params: Mapping[str, ParamValue] | None = None,
) -> ConceptDriftResult:
    """Runs one river drift detector over an error stream.

    Args:
        stream: chronologically ordered errors, e.g. from
            :func:`~orchard_evaluation.quality.classification_error_stream`.
        method: ``"adwin"`` (``river.drift.ADWIN``, any errors), ``"page_hinkley"``
            (``river.drift.PageHinkley``, any errors) or ``"ddm"`` (``river.drift.binary.DDM``,
            0/1 errors only); case, hyphens and underscores are ignored.
        params: constructor arguments of the detector; river's defaults fill the rest.

    Returns:
        Whether, where and how often drift was detected, and the mean error around it.

    Raises:
        ValueError: an unknown method or parameter, a bad parameter value, a non-finite or
            negative error, timestamps out of order, or non-0/1 errors for DDM.
    """
    name, spec, effective = _resolve(method, params or {})
    errors = np.asarray(stream.errors, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(errors)) or np.any(errors < 0):
        raise ValueError("errors must be finite and non-negative")
    if spec.binary_only and not np.all((errors == 0) | (errors == 1)):
        raise ValueError(f"{name} needs a 0/1 error stream (misclassifications)")
    timestamps = stream.timestamps
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if timestamps.shape != errors.shape:
            raise ValueError("timestamps and errors differ in length")
        if not np.all(np.isfinite(timestamps)):
            raise ValueError("timestamps must be finite")
        if np.any(np.diff(timestamps) < 0):
            raise ValueError("the error stream must be in chronological order")
    detector = spec.factory(**effective)
    detections: list[int] = []
    # DDM's update expects a bool; the others a number.
    values = [bool(e) for e in errors] if spec.binary_only else errors.tolist()
    for index, value in enumerate(values):
        detector.update(value)
        if detector.drift_detected:
            detections.append(index)
    first = detections[0] if detections else None
    last = detections[-1] if detections else None
    return ConceptDriftResult(
        method=name,
        params=effective,
        n_observations=int(errors.shape[0]),
        drift_detected=bool(detections),
        n_detections=len(detections),
        first_detection_index=first,
        first_detection_ts=_ts(timestamps, first),
        last_detection_index=last,
        last_detection_ts=_ts(timestamps, last),
        error_rate_before=_mean(errors[:first] if first is not None else errors),
        error_rate_after=_mean(errors[first:]) if first is not None else None,
        detection_indices=tuple(detections),
    )


def _resolve(
    method: str, params: Mapping[str, ParamValue]
) -> tuple[str, _Method, dict[str, ParamValue]]:
    key = method.lower().replace("-", "").replace("_", "")
    names = {m.replace("_", ""): m for m in _METHODS}
    if key not in names:
        raise ValueError(f"unknown concept drift method {method!r}; use one of {list(_METHODS)}")
    name = names[key]
    spec = _METHODS[name]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {name}; known: {list(spec.params)}")
    parsed: dict[str, ParamValue] = {}
    for param, value in params.items():
        clean = spec.params[param].parse(value)
        if clean is None:
            expected = spec.params[param].expected
            raise ValueError(f"{name} parameter {param!r} must be {expected}; got {value!r}")
        parsed[param] = clean
    defaults = {
        p.name: p.default
        for p in inspect.signature(spec.factory).parameters.values()
        if p.name in spec.params
    }
    return name, spec, {**defaults, **parsed}


def _ts(timestamps: FloatArray | None, index: int | None) -> float | None:
    return None if timestamps is None or index is None else float(timestamps[index])


def _mean(values: FloatArray) -> float | None:
    return float(values.mean()) if values.size else None
