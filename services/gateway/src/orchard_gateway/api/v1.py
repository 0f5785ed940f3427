"""KServe v1: list the routed models and forward ``:predict`` to their backends."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from orchard_core.oip import decode_v1_request
from orchard_core.responses import json_response
from orchard_gateway.api.relay import predict, relay
from orchard_gateway.deps import PREDICT, PredictCallDep, RoutesDep, UpstreamDep

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["v1"])


@router.get("/models", dependencies=PREDICT)
async def list_models(routes: RoutesDep) -> Response:
    """The models this gateway routes."""
    return json_response({"models": routes.models})


@router.get("/models/{model}", dependencies=PREDICT)
async def model_status(
    model: str, request: Request, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """A model's status, from its backend."""
    route = routes.resolve(model)
    return await relay(request, upstream, route, f"/v1/models/{route.model}", readiness=True)


# Starlette matches `{model}` as [^/]+ and then the literal ":predict", so "digits:predict"
# routes here with model="digits" (and a percent-encoded %3A is decoded before matching).
@router.post("/models/{model}:predict")
async def v1_predict(model: str, request: Request, call: PredictCallDep) -> Response:
    """Predict with a model (KServe v1 ``{"instances": [...]}``)."""
    decode_v1_request(call.body)
    return await predict(request, call.predictor, model, call.body, protocol="v1")
