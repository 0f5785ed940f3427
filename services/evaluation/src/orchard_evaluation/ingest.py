"""Checking prediction events and feedback items before they are stored.

Bodies are JSON: a list of items, ``{"events": [...]}`` / ``{"items": [...]}``, or one item.
A body that is not JSON, or not one of those shapes, is refused whole (400); within a good
body each item is checked on its own, so one bad item never costs the others their place:
it is reported as rejected, with the reason, and the rest are stored.

Event (DESIGN §3): ``{request_id, ts, model, version, route_arm, experiment?, unit?,
inputs: {name: values}, outputs: {name: values}, latency_ms, status, trace_id?, span_id?,
shadow}``. ``span_id`` (the gateway's span) is only read to link the ingest span to the
prediction's trace; it is not stored.
Feedback: ``{request_id, label?, value?, ts?}`` with at least one of ``label`` and ``value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from orchard_core.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "MAX_ID",
    "Rejected",
    "event_record",
    "event_trace_ids",
    "feedback_record",
    "parse_items",
    "rows_of",
]

MAX_ID: Final = 200
MAX_NAME: Final = 100
MAX_COLUMNS: Final = 1000
# Events dated this far ahead of our clock are refused: a clock that wrong is a bug.
MAX_FUTURE_S: Final = 86_400.0
_EVENT_FIELDS: Final = frozenset(
    {
        "request_id",
        "ts",
        "model",
        "version",
        "route_arm",
        "experiment",
        "unit",
        "inputs",
        "outputs",
        "latency_ms",
        "status",
        "trace_id",
        "span_id",
        "shadow",
    }
)
_FEEDBACK_FIELDS: Final = frozenset({"request_id", "label", "value", "ts"})


@dataclass(frozen=True)
class Rejected:
    """An item that was not stored, and why."""

    index: int
    request_id: str | None
    error: str


def parse_items(body: bytes, wrapper: str, max_items: int) -> list[Any]:
    """The items of a JSON body: a list, ``{wrapper: [...]}`` or one object.

    Raises:
        InvalidInput: not JSON, or not one of those shapes (400).
        PayloadTooLarge: more than ``max_items`` items (413).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and wrapper in data:
        if set(data) != {wrapper}:
            extra = ", ".join(sorted(set(data) - {wrapper}))
            raise InvalidInput(f"unexpected keys beside {wrapper!r}: {extra}")
        data = data[wrapper]
        if not isinstance(data, list):
            raise InvalidInput(f"{wrapper!r} must be a list")
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InvalidInput(
            f"body must be a JSON list of items, an object, or {{{wrapper!r}: [...]}}"
        )
    if len(data) > max_items:
        raise PayloadTooLarge(
            f"{len(data)} items in one request; at most {max_items} "
            "(ORCHARD_EVALUATION_MAX_BATCH_ITEMS): send smaller batches"
        )
    return data


class _Bad(ValueError):
    """One item's field is wrong (becomes a per-item rejection)."""


def event_record(item: Any, now: float) -> dict[str, Any]:
    """A checked event as the ``events`` table's columns.

    Raises:
        ValueError: the item is not a valid event (the message says which field and why).
    """
    if not isinstance(item, dict):
        raise _Bad("an event must be a JSON object")
    unknown = set(item) - _EVENT_FIELDS
    if unknown:
        raise _Bad(f"unknown field(s): {', '.join(sorted(unknown))}")
    inputs = _tensors(item.get("inputs", {}), "inputs")
    outputs = _tensors(item.get("outputs", {}), "outputs")
    status = item.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _Bad("'status' must be an HTTP status code (100-599)")
    latency = item.get("latency_ms")
    if latency is not None and (not _is_number(latency) or latency < 0):
        raise _Bad("'latency_ms' must be a number >= 0")
    shadow = item.get("shadow", False)
    if not isinstance(shadow, bool):
        raise _Bad("'shadow' must be true or false")
    return {
        "request_id": _string(item, "request_id", MAX_ID),
        "shadow": shadow,
        "model": _string(item, "model", MAX_ID),
        "version": _string(item, "version", MAX_NAME),
        "route_arm": _string(item, "route_arm", MAX_NAME, default=""),
        "experiment": _string(item, "experiment", MAX_ID, default=None),
        "unit": _string(item, "unit", MAX_ID, default=None),
        "ts": _timestamp(item.get("ts"), now),
        "status": status,
        "latency_ms": None if latency is None else float(latency),
        "n_rows": rows_of(inputs, outputs),
        "inputs": inputs,
        "outputs": outputs,
        "trace_id": _string(item, "trace_id", 64, default=None),
        "received_at": now,
    }


def event_trace_ids(item: Mapping[str, Any]) -> tuple[object, object]:
    """The event's ``(trace_id, span_id)``, as given (checked by ``trace_links``)."""
    return item.get("trace_id"), item.get("span_id")


def feedback_record(item: Any, now: float) -> dict[str, Any]:
    """A checked feedback item as the ``labels`` table's columns.

    Raises:
        ValueError: the item is not valid feedback (the message says why).
    """
    if not isinstance(item, dict):
        raise _Bad("a feedback item must be a JSON object")
    unknown = set(item) - _FEEDBACK_FIELDS
    if unknown:
        raise _Bad(f"unknown field(s): {', '.join(sorted(unknown))}")
    label = item.get("label")
    value = item.get("value")
    if label is None and value is None:
        raise _Bad("give 'label', 'value' or both")
    if value is not None and not _is_number(value) and not isinstance(value, bool):
        raise _Bad("'value' must be a number or a boolean")
    if isinstance(label, dict):
        raise _Bad("'label' must be a number, string, boolean or a list of them")
    return {
        "request_id": _string(item, "request_id", MAX_ID),
        "label": label,
        "value": None if value is None else float(value),
        "ts": _timestamp(item.get("ts"), now),
        "received_at": now,
    }


def rows_of(inputs: Mapping[str, list[Any]], outputs: Mapping[str, list[Any]]) -> int:
    """How many prediction rows an event holds: the longest input (or output) column."""
    lengths = [len(v) for v in inputs.values()] or [len(v) for v in outputs.values()]
    return max(lengths, default=1) or 1


def _tensors(value: Any, field: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise _Bad(f"{field!r} must be an object of name: values")
    if len(value) > MAX_COLUMNS:
        raise _Bad(f"{field!r} has {len(value)} columns; at most {MAX_COLUMNS}")
    tensors: dict[str, list[Any]] = {}
    for name, values in value.items():
        if len(name) > MAX_NAME or not name:
            raise _Bad(f"{field!r} column names must be 1 to {MAX_NAME} characters")
        flat = _flatten(values) if isinstance(values, list) else [values]
        for v in flat:
            if isinstance(v, dict):
                raise _Bad(f"{field}[{name!r}] must hold numbers, strings or booleans")
            if isinstance(v, float) and not math.isfinite(v):
                raise _Bad(f"{field}[{name!r}] holds a non-finite number")
        tensors[name] = flat
    return tensors


def _flatten(values: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in values):
        return values
    flat: list[Any] = []
    for v in values:
        flat.extend(_flatten(v) if isinstance(v, list) else [v])
    return flat


def _string(item: Mapping[str, Any], field: str, limit: int, **default: Any) -> Any:
    if field not in item or item[field] is None:
        if "default" in default:
            return default["default"]
        raise _Bad(f"{field!r} is required")
    value = item[field]
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _Bad(f"{field!r} must be a non-empty string of at most {limit} characters")
    return value


def _timestamp(value: Any, now: float) -> float:
    if value is None:
        return now
    if not _is_number(value) or value < 0:
        raise _Bad("'ts' must be Unix seconds (a number >= 0)")
    if value > now + MAX_FUTURE_S:
        raise _Bad("'ts' is more than a day in the future")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
