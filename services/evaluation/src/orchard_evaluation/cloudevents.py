"""KServe's payload logger: CloudEvents carrying an inference request or its response.

An InferenceService with ``spec.predictor.logger: {mode: all, url: <evaluation>/v1/events}``
posts two CloudEvents per prediction, sharing one ``id``: type
``org.kubeflow.serving.inference.request`` with the request body as data, then
``org.kubeflow.serving.inference.response`` with the response. KServe sends them in binary
mode (``ce-*`` headers, the body as data); structured mode (``application/cloudevents+json``)
and batches (``application/cloudevents-batch+json``) are read too. Extensions KServe sets:
``inferenceservicename``, ``namespace``, ``endpoint`` (e.g. ``default`` or ``canary``),
``component`` and ``traceparent``.

The two halves are joined by id into one prediction event (DESIGN §3); a half waits in the
database until its pair arrives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from orchard_core.errors import InvalidInput
from orchard_evaluation.ingest import MAX_ID, event_record

__all__ = [
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "CloudEvent",
    "event_from_pair",
    "is_cloudevent",
    "parse_cloudevents",
]

REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"
_KINDS: Final = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
# The context attributes every CloudEvent has; the rest are extensions.
_REQUIRED: Final = ("id", "type", "source", "specversion")


@dataclass(frozen=True)
class CloudEvent:
    """One half of a KServe logger pair."""

    id: str
    kind: str  # "request" or "response"
    attributes: dict[str, str]
    data: Any


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """Whether a request carries CloudEvents (binary or structured mode)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return "ce-id" in headers or content_type in (STRUCTURED, BATCH)


def parse_cloudevents(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """The CloudEvents in one request.

    Raises:
        InvalidInput: a malformed CloudEvent, or one that is not a KServe inference event.
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in (STRUCTURED, BATCH):
        data = _json(body, "body")
        items = data if content_type == BATCH else [data]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidInput("a CloudEvents batch must be a JSON list of objects")
        return [_structured(item) for item in items]
    attributes = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    return [_checked(attributes, _json(body, "data") if body else None)]


def _structured(item: dict[str, Any]) -> CloudEvent:
    attributes = {k: str(v) for k, v in item.items() if k not in ("data", "data_base64")}
    if "data_base64" in item:
        raise InvalidInput("binary CloudEvent data (data_base64) is not supported; send JSON")
    return _checked(attributes, item.get("data"))


def _checked(attributes: dict[str, str], data: Any) -> CloudEvent:
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        raise InvalidInput(f"CloudEvent without {', '.join(missing)}")
    kind = _KINDS.get(attributes["type"])
    if kind is None:
        known = " or ".join(_KINDS)
        raise InvalidInput(f"CloudEvent type {attributes['type']!r} is not {known}")
    if len(attributes["id"]) > MAX_ID:
        raise InvalidInput(f"CloudEvent id longer than {MAX_ID} characters")
    if not isinstance(data, dict):
        raise InvalidInput("CloudEvent data must be a JSON object (an inference request/response)")
    return CloudEvent(attributes["id"], kind, attributes, data)


def event_from_pair(request: CloudEvent, response: CloudEvent, now: float) -> dict[str, Any]:
    """The prediction event (as ``events`` table columns) a joined pair describes.

    Raises:
        ValueError: the pair does not make a valid event.
    """
    attrs = request.attributes
    body = response.data
    started = _time(attrs.get("time"))
    finished = _time(response.attributes.get("time"))
    latency = (
        None
        if started is None or finished is None or finished < started
        else (finished - started) * 1000.0
    )
    model = body.get("model_name") or attrs.get("inferenceservicename")
    version = body.get("model_version") or attrs.get("endpoint") or "default"
    item: dict[str, Any] = {
        "request_id": request.id,
        "ts": started if started is not None else now,
        "model": model,
        "version": str(version),
        "inputs": _inputs(request.data),
        "outputs": _outputs(body),
        "status": 200,
    }
    if attrs.get("endpoint"):
        item["route_arm"] = attrs["endpoint"]
    if latency is not None:
        item["latency_ms"] = latency
    trace = _trace_id(attrs.get("traceparent"))
    if trace is not None:
        item["trace_id"] = trace
    return event_record(item, now)


def _inputs(data: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data.get("inputs"), list):  # OIP v2
        return {t["name"]: t.get("data") for t in data["inputs"] if isinstance(t, dict)}
    instances = data.get("instances")
    if not isinstance(instances, list):
        raise ValueError("the logged request has neither OIP v2 'inputs' nor v1 'instances'")
    columns: dict[str, list[Any]] = {}
    for row in instances:
        if isinstance(row, dict):  # named features
            for name, value in row.items():
                columns.setdefault(str(name), []).append(value)
        else:  # a row of positional features: columns "0", "1", ...
            for index, value in enumerate(row if isinstance(row, list) else [row]):
                columns.setdefault(str(index), []).append(value)
    return columns


def _outputs(data: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data.get("outputs"), list):
        return {t["name"]: t.get("data") for t in data["outputs"] if isinstance(t, dict)}
    if "predictions" in data:
        return {"predictions": data["predictions"]}
    raise ValueError("the logged response has neither OIP v2 'outputs' nor v1 'predictions'")


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        # KServe writes nanoseconds; Python's parser takes at most microseconds.
        head, dot, tail = value.partition(".")
        if dot:
            digits = "".join(c for c in tail if c.isdigit())
            zone = tail[len(digits) :]
            value = f"{head}.{digits[:6]}{zone}"
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return stamp if math.isfinite(stamp) else None


def _trace_id(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"CloudEvent {what} is not valid JSON: {exc}") from None
