"""Model quality over a window: realized (labels), estimated (no labels) and concept drift."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_evaluation.deps import DatabaseDep
from orchard_evaluation.quality_report import QualityQuery, evaluate_quality

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["quality"])


@router.get("/quality")
async def quality(
    database: DatabaseDep,
    model: str,
    version: str | None = None,
    since: Annotated[float | None, Query(description="Unix seconds, inclusive.")] = None,
    until: Annotated[float | None, Query(description="Unix seconds, exclusive.")] = None,
    output: Annotated[str | None, Query(description="The score output's name.")] = None,
    task: Literal["classification", "regression"] = "classification",
    threshold: Annotated[float, Query(ge=0, le=1)] = 0.5,
    concept_method: Annotated[str, Query(description="adwin, page_hinkley or ddm")] = "adwin",
    concept_params: Annotated[
        str | None, Query(description='The detector\'s parameters as JSON, e.g. {"delta": 0.01}')
    ] = None,
) -> Response:
    """Realized metrics with label coverage and delay, the CBPE estimate, concept drift."""
    params = None
    if concept_params is not None:
        try:
            params = orjson.loads(concept_params)
        except orjson.JSONDecodeError:
            raise InvalidInput("concept_params must be a JSON object") from None
        if not isinstance(params, dict):
            raise InvalidInput("concept_params must be a JSON object")
    query = QualityQuery(
        model, version, since, until, output, task, threshold, concept_method, params
    )
    return json_response(await run_in_threadpool(evaluate_quality, database, query))
