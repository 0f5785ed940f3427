"""Evidently HTML reports of a model version over a window: make, list, read, download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from orchard_core.errors import NotFound
from orchard_core.responses import json_response
from orchard_evaluation.deps import DatabaseDep, ReferencesDep, SettingsDep
from orchard_evaluation.report_store import ReportRow, ReportStore, report_record
from orchard_evaluation.reports import Reporter

__all__ = ["router"]

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class ReportRequest(BaseModel):
    """What to report on: a model version and a window (Unix seconds; open ends allowed)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    since: float | None = Field(default=None, description="Unix seconds, inclusive.")
    until: float | None = Field(default=None, description="Unix seconds, exclusive.")


@router.post("", status_code=201)
async def create_report(
    request: ReportRequest,
    database: DatabaseDep,
    references: ReferencesDep,
    settings: SettingsDep,
) -> Response:
    """Make an Evidently data drift report of a window now (reference: resampled profile)."""
    reporter = Reporter(database, references, settings.reports_dir)
    row = await run_in_threadpool(
        reporter.generate, request.model, request.version, request.since, request.until
    )
    return json_response(report_record(row), status_code=201)


@router.get("")
async def list_reports(
    database: DatabaseDep,
    model: str | None = None,
    version: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Reports made (of a model, a version), newest first."""
    rows = await run_in_threadpool(ReportStore(database).list, model, version, limit)
    return json_response({"reports": [report_record(row) for row in rows]})


@router.get("/{report_id}")
async def get_report(report_id: int, database: DatabaseDep) -> Response:
    """One report's record."""
    return json_response(report_record(await _report(database, report_id)))


@router.get("/{report_id}/html")
async def download_report(report_id: int, database: DatabaseDep) -> Response:
    """The report's HTML, as an attachment."""
    row = await _report(database, report_id)
    if row.status != "ready" or row.path is None:
        raise NotFound(f"report {report_id} failed and has no HTML: {row.error}")
    path = Path(row.path)
    if not await run_in_threadpool(path.is_file):
        raise NotFound(f"the HTML of report {report_id} is gone (deleted from the reports folder)")
    return FileResponse(path, media_type="text/html", filename=path.name)


async def _report(database: DatabaseDep, report_id: int) -> ReportRow:
    row = await run_in_threadpool(ReportStore(database).get, report_id)
    if row is None:
        raise NotFound(f"no report {report_id}")
    return row
