"""Canary analysis: a candidate version against the concurrently serving baseline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.responses import json_response
from orchard_evaluation.compare import CompareQuery, compare_versions
from orchard_evaluation.deps import DatabaseDep, WindowsDep

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["canary"])


@router.get("/compare")
async def compare(
    database: DatabaseDep,
    windows: WindowsDep,
    model: str,
    baseline: Annotated[str, Query(description="The serving version (the champion).")],
    candidate: Annotated[str, Query(description="The version being rolled out.")],
    since: Annotated[float, Query(description="Unix seconds: when the candidate started.")],
    until: Annotated[float | None, Query(description="Unix seconds, exclusive.")] = None,
    candidate_weight: Annotated[
        float | None, Query(gt=0, lt=1, description="The candidate's configured traffic share.")
    ] = None,
    candidate_shadow: Annotated[
        bool, Query(description="Judge the candidate's shadow (mirrored) predictions.")
    ] = False,
    error_margin: Annotated[float, Query(ge=0, le=1)] = 0.01,
    latency_margin: Annotated[float, Query(ge=0, le=1)] = 0.01,
    latency_threshold_ms: Annotated[float | None, Query(gt=0)] = None,
    accuracy_margin: Annotated[float, Query(ge=0, le=1)] = 0.02,
    min_samples: Annotated[int, Query(ge=1)] = 100,
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
) -> Response:
    """PASS, FAIL or INCONCLUSIVE, with each signal's statistic, effect and sample sizes."""
    query = CompareQuery(
        model=model,
        baseline=baseline,
        candidate=candidate,
        since=since,
        until=until,
        candidate_weight=candidate_weight,
        candidate_shadow=candidate_shadow,
        error_margin=error_margin,
        latency_margin=latency_margin,
        latency_threshold_ms=latency_threshold_ms,
        accuracy_margin=accuracy_margin,
        min_samples=min_samples,
        alpha=alpha,
    )
    return json_response(await run_in_threadpool(compare_versions, database, query, windows))
