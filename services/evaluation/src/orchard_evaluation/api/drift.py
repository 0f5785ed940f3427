"""Data and prediction drift per model version over any time range."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_evaluation.deps import ReferencesDep, SettingsDep, WindowsDep
from orchard_evaluation.drift import DriftOptions
from orchard_evaluation.drift_report import drift_report

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["drift"])


@router.get("/drift")
async def drift(
    windows: WindowsDep,
    references: ReferencesDep,
    settings: SettingsDep,
    model: str,
    version: str,
    since: Annotated[float | None, Query(description="Unix seconds, inclusive.")] = None,
    until: Annotated[float | None, Query(description="Unix seconds, exclusive.")] = None,
    methods: Annotated[
        str | None, Query(description='Per-column methods as JSON, e.g. {"age": "psi"}')
    ] = None,
    thresholds: Annotated[
        str | None, Query(description='Per-column thresholds as JSON, e.g. {"age": 0.2}')
    ] = None,
    min_rows: Annotated[
        int | None, Query(ge=1, description="Default: ORCHARD_EVALUATION_DRIFT_MIN_ROWS.")
    ] = None,
) -> Response:
    """Per-feature and per-output score, threshold, method and verdict, and the drift share."""
    try:
        options = DriftOptions(
            methods=_json_object(methods, "methods"),
            thresholds=_json_object(thresholds, "thresholds"),
            min_rows=min_rows or settings.drift_min_rows,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(str(exc)) from None
    report = await run_in_threadpool(
        drift_report, windows, references, model, version, since, until, options
    )
    return json_response(report)


def _json_object(text: str | None, name: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"{name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object")
    return value
