"""Triggers in: from evaluation and by hand (``POST /v1/triggers``), from Alertmanager."""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_retraining.alerts import triggers_from_alertmanager
from orchard_retraining.deps import BodyDep, IntakeDep, MetricsDep
from orchard_retraining.triggers import SOURCES, Trigger, record_dict

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["triggers"])
_FIELDS: Final = frozenset(
    {"trigger_id", "source", "model", "version", "kind", "reason", "details", "ts"}
)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None


def _text(data: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name!r} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{name!r} must be a non-empty string of at most {limit} characters")
    return value


def _trigger(data: Any) -> Trigger:
    if not isinstance(data, dict):
        raise InvalidInput("a trigger must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    external = _text(data, "trigger_id", 300)
    source = data.get("source") or ("evaluation" if external else "manual")
    if source not in SOURCES:
        raise InvalidInput(f"'source' must be one of {', '.join(SOURCES)}")
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise InvalidInput("'details' must be an object")
    return Trigger(
        source=source,
        model=str(_text(data, "model", 200, required=True)),
        version=_text(data, "version", 100),
        kind=_text(data, "kind", 100) or source,
        reason=_text(data, "reason", 2000) or f"{source} trigger",
        details=details,
        external_id=None if external is None else f"{source}:{external}",
    )


@router.post("/triggers", status_code=202)
async def receive_trigger(body: BodyDep, intake: IntakeDep, metrics: MetricsDep) -> Response:
    """Record a retraining trigger (evaluation's, or one by hand); resends are recorded once."""
    trigger = _trigger(_json(body))
    record, new = await run_in_threadpool(intake.receive, trigger)
    if new:
        metrics.triggers.labels(trigger.source, trigger.kind, record.outcome).inc()
    return json_response({**record_dict(record), "new": new}, status_code=202)


@router.post("/alerts/alertmanager", status_code=202)
async def receive_alerts(body: BodyDep, intake: IntakeDep, metrics: MetricsDep) -> Response:
    """Alertmanager's webhook: each firing alert about a model becomes a trigger."""
    triggers, skipped = triggers_from_alertmanager(_json(body))
    results = []
    for index, trigger in triggers:
        record, new = await run_in_threadpool(intake.receive, trigger)
        if new:
            metrics.triggers.labels(trigger.source, trigger.kind, record.outcome).inc()
        results.append({"index": index, "trigger": record_dict(record), "new": new})
    return json_response(
        {
            "triggers": results,
            "skipped": [
                {"index": s.index, "alertname": s.alertname, "reason": s.reason} for s in skipped
            ],
        },
        status_code=202,
    )


@router.get("/triggers")
async def list_triggers(
    intake: IntakeDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Triggers received, newest first, with their outcome and what they led to."""
    records = await run_in_threadpool(intake.history, model, limit)
    return json_response({"triggers": [record_dict(r) for r in records]})
