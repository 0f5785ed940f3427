"""The OIP v2 model repository extension: index, load, unload."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from orchard_core import json_response
from orchard_inference.deps import BodyDep, DataPlaneDep

__all__ = ["router"]

router = APIRouter(prefix="/v2/repository", tags=["repository"])


@router.post("/index")
async def repository_index(dataplane: DataPlaneDep) -> Response:
    """Every model version with its state (and failure reason)."""
    return json_response(dataplane.index())


@router.post("/models/{model}/load")
async def load_model(model: str, body: BodyDep, dataplane: DataPlaneDep) -> Response:
    """Load or reload a model; optional body {"parameters": {"uri": ...}}."""
    return json_response(await dataplane.load(model, body))


@router.post("/models/{model}/unload")
async def unload_model(model: str, body: BodyDep, dataplane: DataPlaneDep) -> Response:
    """Unload a model; optional body {"parameters": {"version": ...}} unloads one version."""
    return json_response(await dataplane.unload(model, body))
