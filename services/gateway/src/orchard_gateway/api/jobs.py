"""Async batch jobs: upload a JSONL or CSV file, follow the job, download its results."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from orchard_core.responses import json_response
from orchard_gateway.deps import CurrentKey, JobsDep, RoutesDep
from orchard_gateway.job_store import MEDIA_TYPES, upload_format

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

Format = Literal["jsonl", "csv"]


@router.post("", status_code=202)
async def submit_job(
    request: Request,
    key: CurrentKey,
    routes: RoutesDep,
    jobs: JobsDep,
    model: Annotated[str, Query(min_length=1)],
    format: Annotated[Format | None, Query()] = None,
) -> Response:
    """Upload rows (JSONL or CSV, the raw body) to predict with ``model`` as a job."""
    routes.resolve(model)
    fmt = upload_format(format, request.headers.get("content-type"))
    job = await jobs.submit(
        model,
        fmt,
        request.stream(),
        declared_size=request.headers.get("content-length"),
        key=key,
    )
    return json_response(job.view(), 202, {"Location": f"/v1/jobs/{job.id}"})


@router.get("")
async def list_jobs(
    key: CurrentKey, jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    """The caller's batch jobs, newest first."""
    return json_response({"jobs": [job.view() for job in jobs.visible(key, limit=limit)]})


@router.get("/{job_id}")
async def job_status(job_id: str, key: CurrentKey, jobs: JobsDep) -> Response:
    """A batch job's status and progress."""
    return json_response(jobs.get(job_id, key).view())


@router.get("/{job_id}/results")
async def job_results(
    job_id: str, key: CurrentKey, jobs: JobsDep, format: Format = "jsonl"
) -> Response:
    """A finished batch job's results, one per input row, as JSONL or CSV."""
    lines = jobs.results(job_id, format, key)
    disposition = f'attachment; filename="{job_id}-results.{format}"'
    return StreamingResponse(
        lines, media_type=MEDIA_TYPES[format], headers={"Content-Disposition": disposition}
    )


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, key: CurrentKey, jobs: JobsDep) -> Response:
    """Cancel a queued or running batch job."""
    return json_response(jobs.cancel(job_id, key).view())
