"""Labels and business outcomes in, by request id; each item's fate reported."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.responses import json_response
from orchard_evaluation.deps import BodyDep, MetricsDep, SettingsDep, StoreDep
from orchard_evaluation.ingest import feedback_record, parse_items

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.post("/feedback")
async def ingest_feedback(
    body: BodyDep, settings: SettingsDep, store: StoreDep, metrics: MetricsDep
) -> Response:
    """Store labels/outcomes: joined, pending (prediction not seen yet), duplicate or rejected."""
    items = parse_items(body, "items", settings.max_batch_items)
    now = time.time()
    report: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    positions: list[int] = []
    for item in items:
        request_id = item.get("request_id") if isinstance(item, dict) else None
        entry: dict[str, Any] = {"request_id": request_id if isinstance(request_id, str) else None}
        try:
            records.append(feedback_record(item, now))
            positions.append(len(report))
        except ValueError as exc:
            entry.update(status="rejected", error=str(exc))
        report.append(entry)
    outcomes = await run_in_threadpool(store.add_labels, records) if records else []
    for position, stored in zip(positions, outcomes, strict=True):
        report[position]["status"] = stored
    counts = Counter(entry["status"] for entry in report)
    for name in ("joined", "pending", "duplicate", "rejected"):
        metrics.feedback.labels(name).inc(counts[name])
    return json_response(
        {
            "joined": counts["joined"],
            "pending": counts["pending"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "items": report,
        }
    )
