"""Open Inference Protocol v2: the gateway's own server endpoints and the routed models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from orchard_core.responses import json_response
from orchard_gateway.api.relay import predict, relay
from orchard_gateway.deps import (
    ADMIN,
    PREDICT,
    BodyDep,
    PredictCall,
    PredictCallDep,
    RoutesDep,
    UpstreamDep,
)
from orchard_gateway.oip_check import infer_parameters
from orchard_gateway.routes_table import Route

__all__ = ["answer_infer", "infer", "infer_version", "router"]

router = APIRouter(prefix="/v2", tags=["v2"])


async def answer_infer(
    request: Request, call: PredictCall, model: str, version: str | None = None
) -> Response:
    """One OIP v2 inference: validate the request, route it, answer with the backend's reply.

    Shared by the two routes below and by ``InferFastPath``, which answers the same requests
    without FastAPI's routing and dependency resolution.
    """
    # Bad input is answered here, without a round trip; the original bytes go upstream.
    parameters = infer_parameters(call.body)
    return await predict(
        request, call.predictor, model, call.body, version=version, parameters=parameters
    )


# The prediction routes come first: routes are matched in order, and these are the hot path.
# InferFastPath answers their POSTs before FastAPI routes them; they stay registered for the
# OpenAPI document, for other methods (405) and for tests that override dependencies.
@router.post("/models/{model}/infer")
async def infer(model: str, request: Request, call: PredictCallDep) -> Response:
    """Inference on a model: its version is chosen by the route table (weights, stickiness)."""
    return await answer_infer(request, call, model)


@router.post("/models/{model}/versions/{version}/infer")
async def infer_version(
    model: str, version: str, request: Request, call: PredictCallDep
) -> Response:
    """Inference on one routed version of a model."""
    return await answer_infer(request, call, model, version)


@router.get("")
async def server_metadata(request: Request) -> Response:
    """Server metadata: name, version and protocol extensions."""
    return json_response(
        {
            "name": "orchard-gateway",
            "version": request.app.version,
            "extensions": ["model_repository_extension"],
        }
    )


@router.get("/health/live")
async def server_live() -> Response:
    """Server liveness."""
    return json_response({"live": True})


@router.get("/health/ready")
async def server_ready(routes: RoutesDep) -> Response:
    """Server readiness: a route table is loaded."""
    return json_response({"ready": True})


@router.get("/models", dependencies=PREDICT)
async def list_models(routes: RoutesDep) -> Response:
    """The models this gateway routes."""
    return json_response({"models": routes.models})


def _model_path(route: Route, suffix: str = "") -> str:
    # Always a routed version: the backend may hold others the gateway does not route.
    return f"/v2/models/{route.model}/versions/{route.version}{suffix}"


@router.get("/models/{model}", dependencies=PREDICT)
async def model_metadata(
    model: str, request: Request, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Metadata of the routed version of a model."""
    route = routes.resolve(model)
    return await relay(request, upstream, route, _model_path(route))


@router.get("/models/{model}/versions/{version}", dependencies=PREDICT)
async def model_version_metadata(
    model: str, version: str, request: Request, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Metadata of one routed version of a model."""
    route = routes.resolve(model, version)
    return await relay(request, upstream, route, _model_path(route))


@router.get("/models/{model}/ready", dependencies=PREDICT)
async def model_ready(
    model: str, request: Request, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Readiness of the routed version of a model."""
    route = routes.resolve(model)
    return await relay(request, upstream, route, _model_path(route, "/ready"), readiness=True)


@router.get("/models/{model}/versions/{version}/ready", dependencies=PREDICT)
async def model_version_ready(
    model: str, version: str, request: Request, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Readiness of one routed version of a model."""
    route = routes.resolve(model, version)
    return await relay(request, upstream, route, _model_path(route, "/ready"), readiness=True)


def _repository_path(route: Route, action: str) -> str:
    return f"/v2/repository/models/{route.model}/{action}"


@router.post("/repository/models/{model}/load", dependencies=ADMIN)
async def repository_load(
    model: str, request: Request, body: BodyDep, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Ask the model's backend to load it."""
    route = routes.resolve(model)
    return await relay(request, upstream, route, _repository_path(route, "load"), body)


@router.post("/repository/models/{model}/unload", dependencies=ADMIN)
async def repository_unload(
    model: str, request: Request, body: BodyDep, routes: RoutesDep, upstream: UpstreamDep
) -> Response:
    """Ask the model's backend to unload it."""
    route = routes.resolve(model)
    return await relay(
        request, upstream, route, f"/v2/repository/models/{route.model}/unload", body
    )
