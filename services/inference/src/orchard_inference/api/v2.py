"""Open Inference Protocol v2 REST endpoints: health, metadata, readiness, inference."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from orchard_core import json_response
from orchard_core.responses import JSON_MEDIA_TYPE
from orchard_core.tracing import set_model_attributes
from orchard_inference.deps import BodyDep, DataPlaneDep
from orchard_inference.model import ModelState, ServedModel

__all__ = ["MODEL_VERSION_HEADER", "router"]

MODEL_VERSION_HEADER = "X-Orchard-Model-Version"

router = APIRouter(prefix="/v2", tags=["v2"])


@router.get("/health/live")
async def server_live() -> Response:
    """Server liveness."""
    return json_response({"live": True})


@router.get("/health/ready")
async def server_ready(dataplane: DataPlaneDep) -> Response:
    """Server readiness: every start-up model is loaded."""
    reason = dataplane.not_ready_reason()
    if reason is not None:
        return json_response({"error": f"not ready: {reason}", "ready": False}, status_code=503)
    return json_response({"ready": True})


@router.get("")
async def server_metadata(dataplane: DataPlaneDep) -> Response:
    """Server metadata: name, version and extensions."""
    return json_response(dataplane.server_metadata())


@router.get("/models")
async def list_models(dataplane: DataPlaneDep) -> Response:
    """Names of the models this server knows (KServe)."""
    return json_response({"models": dataplane.repository.names()})


@router.get("/models/{model}")
async def model_metadata(model: str, dataplane: DataPlaneDep) -> Response:
    """Model metadata (current version): inputs, outputs, platform, load state."""
    return json_response(await dataplane.model_metadata(model, None))


@router.get("/models/{model}/versions/{version}")
async def model_version_metadata(model: str, version: str, dataplane: DataPlaneDep) -> Response:
    """Model metadata of one version."""
    return json_response(await dataplane.model_metadata(model, version))


def _readiness(served: ServedModel) -> Response:
    body = {"name": served.name, "version": served.version, "ready": True}
    if served.state is ModelState.READY:
        return json_response(body)
    body.update(
        error=served.not_ready_message(),
        ready=False,
        state=served.state.value,
        reason=served.reason,
    )
    return json_response(body, status_code=503)


@router.get("/models/{model}/ready")
async def model_ready(model: str, dataplane: DataPlaneDep) -> Response:
    """Model readiness (current version); 503 with the reason when not ready."""
    return _readiness(await dataplane.model_ready(model, None))


@router.get("/models/{model}/versions/{version}/ready")
async def model_version_ready(model: str, version: str, dataplane: DataPlaneDep) -> Response:
    """Readiness of one model version."""
    return _readiness(await dataplane.model_ready(model, version))


def _inferred(model: str, result: tuple[bytes, str]) -> Response:
    body, version = result
    set_model_attributes(model, version)
    return Response(body, media_type=JSON_MEDIA_TYPE, headers={MODEL_VERSION_HEADER: version})


@router.post("/models/{model}/infer")
async def infer(model: str, body: BodyDep, dataplane: DataPlaneDep) -> Response:
    """Inference with the model's current version."""
    set_model_attributes(model)  # also on a failed prediction's span
    return _inferred(model, await dataplane.infer(model, None, body))


@router.post("/models/{model}/versions/{version}/infer")
async def infer_version(
    model: str, version: str, body: BodyDep, dataplane: DataPlaneDep
) -> Response:
    """Inference with one model version."""
    set_model_attributes(model, version)  # also on a failed prediction's span
    return _inferred(model, await dataplane.infer(model, version, body))
