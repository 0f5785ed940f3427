"""Prediction events (DESIGN §3, "Prediction events"): what the gateway logs per prediction.

Every prediction the gateway answers or mirrors (shadows included) becomes one event::

    {request_id, ts, model, version, route_arm, experiment?, unit?,
     inputs: {name: values}, outputs: {name: values}, latency_ms, status, trace_id?, span_id?,
     shadow}

``trace_id``/``span_id`` name the gateway's span of the request (W3C hex), so evaluation's
ingest span can link to the prediction's trace; a shadow's event has neither.

``ts`` is Unix time in seconds (float). Sampling is by a hash of the ``request_id``, so a
request's primary and shadow events are kept or skipped together. How events travel to
evaluation: ``evaluation_sinks``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["event_from_oip", "is_sampled", "oip_tensors"]

_HASH_SPACE: Final = float(1 << 64)


def is_sampled(request_id: str, rate: float) -> bool:
    """Whether events of ``request_id`` are kept at sampling ``rate`` (0..1); deterministic."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE < rate


def _flatten(data: list[Any]) -> list[Any]:
    # OIP v2 data is flat or nested row-major; flat is the common case and costs nothing.
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def oip_tensors(body: bytes | Mapping[str, Any] | None, key: str) -> dict[str, list[Any]]:
    """``{name: flat data}`` of the tensors under ``key`` ("inputs" or "outputs") of an OIP v2
    request or response, raw bytes or decoded. Malformed bodies and tensors are skipped, never
    raised: the result is ``{}`` or holds only the well-formed tensors."""
    try:
        decoded: Any = orjson.loads(body) if isinstance(body, bytes | bytearray) else body
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(decoded, Mapping):
        return {}
    tensors = decoded.get(key)
    if not isinstance(tensors, list):
        return {}
    out: dict[str, list[Any]] = {}
    for tensor in tensors:
        if not isinstance(tensor, Mapping):
            continue
        name = tensor.get("name")
        data = tensor.get("data")
        if isinstance(name, str) and isinstance(data, list):
            out[name] = _flatten(data)
    return out


def event_from_oip(
    request_body: bytes | Mapping[str, Any] | None,
    response_body: bytes | Mapping[str, Any] | None,
    *,
    request_id: str,
    model: str,
    version: str,
    route_arm: str,
    latency_ms: float,
    status: int,
    shadow: bool = False,
    experiment: str | None = None,
    unit: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """One prediction event from an OIP v2 request and its response (bytes or decoded).

    ``inputs``/``outputs`` are ``{name: flat values}``; an error answer or a malformed body
    gives ``{}``. Optional fields are left out when ``None``. Never raises on bad bodies.
    """
    event: dict[str, Any] = {
        "request_id": request_id,
        "ts": time.time() if ts is None else ts,
        "model": model,
        "version": version,
        "route_arm": route_arm,
        "inputs": oip_tensors(request_body, "inputs"),
        "outputs": oip_tensors(response_body, "outputs"),
        "latency_ms": latency_ms,
        "status": status,
        "shadow": shadow,
    }
    if experiment is not None:
        event["experiment"] = experiment
    if unit is not None:
        event["unit"] = unit
    if trace_id is not None:
        event["trace_id"] = trace_id
    if span_id is not None:
        event["span_id"] = span_id
    return event
