"""Handing the caller's request to the upstream, and a prediction's answer back to the caller."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from fastapi import Request
from starlette.responses import Response

from orchard_core.logs import add_log_fields
from orchard_core.tracing import set_model_attributes
from orchard_gateway.auth import RateDecision, RateLimiter
from orchard_gateway.predictor import Prediction, Predictor
from orchard_gateway.routes_table import Route
from orchard_gateway.upstream import Upstream, relay_response


def request_id_of(request: Request) -> str:
    """The request id the core middleware put in the scope (the caller's, or a new one)."""
    return str(request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex)


__all__ = ["ARM_HEADER", "FALLBACK_HEADER", "answer", "predict", "relay", "request_id_of"]

ARM_HEADER: Final = b"x-orchard-route-arm"
FALLBACK_HEADER: Final = b"x-orchard-fallback-from"


async def relay(
    request: Request,
    upstream: Upstream,
    route: Route,
    path: str,
    body: bytes | None = None,
    *,
    readiness: bool = False,
) -> Response:
    """Forward the caller's request (method, headers, ``body``) to ``route``'s backend.

    ``readiness``: a readiness check, whose 503 is an answer, not a backend failure.
    """
    response = await upstream.forward(
        route,
        request.method,
        path,
        headers=request.headers.raw,
        request_id=request_id_of(request),
        body=body,
        readiness=readiness,
    )
    _rate_limit_headers(request, response)
    return response


async def predict(
    request: Request,
    predictor: Predictor,
    model: str,
    body: bytes,
    *,
    version: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    protocol: str = "v2",
) -> Response:
    """Route one prediction through ``predictor`` and answer the caller with its result."""
    add_log_fields(request, model=model)
    set_model_attributes(model)
    prediction = await predictor.infer(
        model,
        body,
        request_id=request_id_of(request),
        version=version,
        headers=request.headers.raw,
        parameters=parameters,
        protocol=protocol,
    )
    add_log_fields(request, version=prediction.version, route_arm=prediction.arm)
    set_model_attributes(model, prediction.version)
    return answer(request, prediction)


def answer(request: Request, prediction: Prediction) -> Response:
    """The caller's response: the backend's answer, plus which version and arm gave it."""
    response = relay_response(prediction.route, prediction.reply)
    response.raw_headers.append((ARM_HEADER, prediction.arm.encode("latin-1")))
    if prediction.fallback_from is not None:
        response.raw_headers.append(
            (FALLBACK_HEADER, prediction.fallback_from.version.encode("latin-1"))
        )
    _rate_limit_headers(request, response)
    return response


def _rate_limit_headers(request: Request, response: Response) -> None:
    # Set by the auth dependency when auth is on: how the caller's rate limit stands.
    decision = getattr(request.state, "rate_limit", None)
    if isinstance(decision, RateDecision):
        response.headers.update(RateLimiter.headers(decision))
