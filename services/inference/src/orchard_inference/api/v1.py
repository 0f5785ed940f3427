"""KServe v1 REST endpoints: model list, model readiness, ``:predict``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from orchard_core import json_response
from orchard_core.responses import JSON_MEDIA_TYPE
from orchard_core.tracing import set_model_attributes
from orchard_inference.api.v2 import MODEL_VERSION_HEADER
from orchard_inference.deps import BodyDep, DataPlaneDep
from orchard_inference.model import ModelState

__all__ = ["root_router", "router"]

router = APIRouter(prefix="/v1", tags=["v1"])
#: KServe v1 liveness lives at the root (its client's ``is_server_live`` asks there).
root_router = APIRouter(tags=["v1"])


@root_router.get("/")
async def server_live() -> Response:
    """Server liveness, KServe v1 style."""
    return json_response({"status": "alive"})


@router.get("/models")
async def list_models(dataplane: DataPlaneDep) -> Response:
    """Names of the models this server knows."""
    return json_response({"models": dataplane.repository.names()})


@router.get("/models/{model}")
async def model_ready(model: str, dataplane: DataPlaneDep) -> Response:
    """Model readiness; 503 with the reason when not ready."""
    served = await dataplane.model_ready(model, None)
    if served.state is ModelState.READY:
        return json_response({"name": model, "ready": True})
    body = {
        "error": served.not_ready_message(),
        "name": model,
        "ready": False,
        "state": served.state.value,
        "reason": served.reason,
    }
    return json_response(body, status_code=503)


@router.post("/models/{model}:predict")
async def predict(model: str, body: BodyDep, dataplane: DataPlaneDep) -> Response:
    """Predict: {"instances": [...]} → {"predictions": [...]}."""
    set_model_attributes(model)  # also on a failed prediction's span
    content, version = await dataplane.predict_v1(model, body)
    set_model_attributes(model, version)
    return Response(content, media_type=JSON_MEDIA_TYPE, headers={MODEL_VERSION_HEADER: version})
