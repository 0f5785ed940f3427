"""Synchronous batch prediction: many rows in one request, sent to the backend in chunks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from orchard_core.responses import json_response
from orchard_gateway.api.relay import request_id_of
from orchard_gateway.batch import parse_batch_request, predict_rows
from orchard_gateway.deps import (
    PREDICT,
    BatchMetricsDep,
    BodyDep,
    PredictorDep,
    RoutesDep,
    SettingsDep,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["batch"])


@router.post("/models/{model}/batch", dependencies=PREDICT)
async def batch_predict(
    model: str,
    request: Request,
    body: BodyDep,
    routes: RoutesDep,
    settings: SettingsDep,
    predictor: PredictorDep,
    metrics: BatchMetricsDep,
) -> Response:
    """Predict many rows ``{"rows": [{column: value}], "chunk_size"?}``, chunk by chunk."""
    routes.resolve(model)  # an unknown model is refused before anything is sent
    batch = parse_batch_request(
        body, max_rows=settings.batch_max_rows, max_chunk_size=settings.batch_chunk_size
    )
    answer = await predict_rows(
        predictor, model, batch, request_id=request_id_of(request), metrics=metrics
    )
    return json_response(answer)
