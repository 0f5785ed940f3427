"""Feedback intake: labels and outcomes for past predictions, forwarded to evaluation.

The body is one item, a JSON list of items, or ``{"items": [...]}``; an item is
``{request_id, label?, value?, ts?}`` (DESIGN §3, "Feedback"):

- ``request_id``: the id of the prediction (its ``X-Request-Id``), a non-empty string of at
  most 256 characters;
- ``label``: the ground truth for the model's task (any JSON value but null);
- ``value``: a business outcome, a number or a boolean (for A/B tests);
- ``ts``: when it was observed, Unix seconds; the gateway's receipt time when left out.

At least one of ``label`` and ``value``; no other fields. The whole body is refused (400,
naming the first bad item's index) or accepted (202 ``{"accepted": n}``): accepted items are
queued and posted to evaluation's ``POST /v1/feedback`` in batches, like prediction events,
so evaluation may be down for a while. More than :data:`MAX_ITEMS` items is a 413; a full
queue is a 503 with ``Retry-After``; with no evaluation URL configured, every call is a 503.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from orchard_core.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from orchard_core.logs import add_log_fields
from orchard_core.responses import json_response
from orchard_gateway.deps import PREDICT, BodyDep, FeedbackDep

__all__ = ["MAX_ITEMS", "MAX_REQUEST_ID", "FeedbackQueueFull", "parse_feedback", "router"]

MAX_ITEMS: Final = 1000
"""Most feedback items in one request (then 413)."""
MAX_REQUEST_ID: Final = 256
_FIELDS: Final = frozenset({"request_id", "label", "value", "ts"})

router = APIRouter(prefix="/v1", tags=["feedback"])

_ITEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["request_id"],
    "additionalProperties": False,
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID},
        "label": {"description": "Ground truth for the model's task."},
        "value": {"type": ["number", "boolean"], "description": "A business outcome."},
        "ts": {"type": "number", "description": "Unix seconds; default: receipt time."},
    },
}
# The body is read raw (BodyDep) and checked by hand; this only documents it in OpenAPI.
_OPENAPI: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ITEM_SCHEMA,
                        {"type": "array", "items": _ITEM_SCHEMA, "maxItems": MAX_ITEMS},
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": _ITEM_SCHEMA,
                                    "maxItems": MAX_ITEMS,
                                }
                            },
                        },
                    ]
                }
            }
        },
    }
}


class FeedbackQueueFull(ServiceUnavailable):
    """The gateway's feedback queue has no room for the items now (503, ``Retry-After``)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_item(index: int, item: Any, received: float) -> dict[str, Any]:
    where = f"feedback item {index}"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: must be an object, got {type(item).__name__}")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))};"
            " expected request_id, label, value, ts"
        )
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        raise InvalidInput(
            f"{where}: request_id must be a non-empty string of at most {MAX_REQUEST_ID} characters"
        )
    label = item.get("label")
    value = item.get("value")
    if label is None and value is None:
        raise InvalidInput(f"{where}: give a label, a value or both")
    if value is not None and not (_is_number(value) or isinstance(value, bool)):
        raise InvalidInput(f"{where}: value must be a number or a boolean")
    ts = item.get("ts")
    if ts is not None and not _is_number(ts):
        raise InvalidInput(f"{where}: ts must be a number (Unix seconds)")
    checked: dict[str, Any] = {"request_id": request_id, "ts": received if ts is None else ts}
    if label is not None:
        checked["label"] = label
    if value is not None:
        checked["value"] = value
    return checked


def parse_feedback(body: bytes, *, received: float) -> list[dict[str, Any]]:
    """The feedback items of a request body, checked (see the module docstring).

    Raises:
        InvalidInput: the body or one of its items is malformed (400).
        PayloadTooLarge: more than ``MAX_ITEMS`` items (413).
    """
    try:
        decoded: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if isinstance(decoded, dict) and "items" in decoded and "request_id" not in decoded:
        if set(decoded) != {"items"} or not isinstance(decoded["items"], list):
            raise InvalidInput(
                '{"items": [...]} must hold a list of feedback items and nothing else'
            )
        decoded = decoded["items"]
    items: list[Any] = decoded if isinstance(decoded, list) else [decoded]
    if not items:
        raise InvalidInput("no feedback items: send one item or a non-empty list of them")
    if len(items) > MAX_ITEMS:
        raise PayloadTooLarge(
            f"{len(items)} feedback items in one request; send at most {MAX_ITEMS} at a time"
        )
    return [_check_item(index, item, received) for index, item in enumerate(items)]


# The sink comes before the body: with forwarding off, the body is never read.
@router.post("/feedback", dependencies=PREDICT, status_code=202, openapi_extra=_OPENAPI)
async def feedback(request: Request, sink: FeedbackDep, body: BodyDep) -> Response:
    """Send labels or outcomes for past predictions (one item or a list) to evaluation."""
    items = parse_feedback(body, received=time.time())
    add_log_fields(request, feedback_items=len(items))
    if not sink.offer_all(items):
        raise FeedbackQueueFull("the gateway's feedback queue is full; retry shortly")
    return json_response({"accepted": len(items)}, status_code=202)
