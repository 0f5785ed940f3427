"""Prediction events in: from the gateway (batched JSON) or KServe's payload logger."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_core.tracing import MAX_LINKS, trace_links, tracer_for
from orchard_evaluation.cloudevents import is_cloudevent, parse_cloudevents
from orchard_evaluation.deps import BodyDep, MetricsDep, SettingsDep, StoreDep
from orchard_evaluation.ingest import event_record, event_trace_ids, parse_items

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.post("/events")
async def ingest_events(
    request: Request, body: BodyDep, settings: SettingsDep, store: StoreDep, metrics: MetricsDep
) -> Response:
    """Store prediction events (idempotent by request id and shadow), or KServe CloudEvents."""
    if is_cloudevent(request.headers):
        return await _cloudevents(request, body, store, metrics)
    items = parse_items(body, "events", settings.max_batch_items)
    now = time.time()
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    traced: list[tuple[object, object]] = []
    for index, item in enumerate(items):
        try:
            records.append(event_record(item, now))
            traced.append(event_trace_ids(item))
        except ValueError as exc:
            request_id = item.get("request_id") if isinstance(item, dict) else None
            rejected.append({"index": index, "request_id": _id(request_id), "error": str(exc)})
    # One span per batch, linked to the traces of (at most MAX_LINKS of) its predictions.
    links, unlinked = trace_links(traced, limit=MAX_LINKS)
    tracer = tracer_for(request.app, "orchard_evaluation")
    with tracer.start_as_current_span("ingest events", links=links) as span:
        outcomes = await run_in_threadpool(store.add_events, records) if records else []
        counts = Counter(outcomes)
        if span.is_recording():
            span.set_attributes(
                {
                    "orchard.events.accepted": counts["accepted"],
                    "orchard.events.duplicates": counts["duplicate"],
                    "orchard.events.rejected": len(rejected),
                    "orchard.links.dropped": unlinked,
                }
            )
    metrics.events.labels("accepted").inc(counts["accepted"])
    metrics.events.labels("duplicate").inc(counts["duplicate"])
    metrics.events.labels("rejected").inc(len(rejected))
    return json_response(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": len(rejected),
            "errors": rejected,
        }
    )


async def _cloudevents(
    request: Request, body: bytes, store: StoreDep, metrics: MetricsDep
) -> Response:
    try:
        events = parse_cloudevents(request.headers, body)
    except InvalidInput:
        metrics.cloudevents.labels("rejected").inc()
        raise
    results = []
    for event in events:
        try:
            half, outcome = await run_in_threadpool(store.add_cloudevent, event, time.time())
        except ValueError as exc:
            metrics.cloudevents.labels("rejected").inc()
            raise InvalidInput(f"CloudEvent {event.id!r}: {exc}") from None
        metrics.cloudevents.labels(half).inc()
        if outcome is not None:
            metrics.events.labels(outcome).inc()
        results.append({"id": event.id, "kind": event.kind, "status": half, "event": outcome})
    return json_response({"cloudevents": results})


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 200 else None
