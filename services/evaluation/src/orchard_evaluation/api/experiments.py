"""A/B experiments: each arm's primary metric against control, and the traffic split."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_evaluation.deps import DatabaseDep
from orchard_evaluation.experiments import ExperimentQuery, analyze_experiment
from orchard_evaluation.stats import DEFAULT_PLANNED_N

__all__ = ["router"]

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.get("/{experiment_id}")
async def experiment(
    database: DatabaseDep,
    experiment_id: str,
    metric: Annotated[
        Literal["accuracy", "value", "auto"],
        Query(description="accuracy from labels, value from feedback; auto: value if any."),
    ] = "auto",
    control: Annotated[
        str | None, Query(description="The control arm (default: 'control', else champion).")
    ] = None,
    weights: Annotated[
        str | None,
        Query(description='Configured split as JSON, e.g. {"control": 0.5, "treatment": 0.5}'),
    ] = None,
    since: Annotated[float | None, Query(description="Unix seconds, inclusive.")] = None,
    until: Annotated[float | None, Query(description="Unix seconds, exclusive.")] = None,
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    min_samples: Annotated[int, Query(ge=2)] = 100,
    planned_n: Annotated[
        int, Query(ge=1, description="Total observations where the sequence is tightest.")
    ] = DEFAULT_PLANNED_N,
) -> Response:
    """Per-arm metric, difference to control with fixed-horizon and always-valid inference."""
    query = ExperimentQuery(
        experiment=experiment_id,
        metric=metric,
        control=control,
        weights=_weights(weights),
        since=since,
        until=until,
        alpha=alpha,
        min_samples=min_samples,
        planned_n=planned_n,
    )
    return json_response(await run_in_threadpool(analyze_experiment, database, query))


def _weights(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    message = 'weights must be a JSON object of arm → weight >= 0, e.g. {"control": 0.5}'
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput(message) from None
    if not isinstance(value, dict) or not value:
        raise InvalidInput(message)
    weights: dict[str, float] = {}
    for arm, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidInput(f"{message}; arm {arm!r} has {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInput(f"{message}; arm {arm!r} has {weight!r}")
        weights[arm] = float(weight)
    if sum(weights.values()) <= 0:
        raise InvalidInput("weights are all zero: at least one arm needs traffic")
    return weights
