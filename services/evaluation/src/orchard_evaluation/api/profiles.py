"""Reference profiles: list, read and register them per model version."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput, NotFound
from orchard_core.responses import json_response
from orchard_evaluation.deps import BodyDep, ReferencesDep

__all__ = ["router"]

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])


@router.get("")
async def list_profiles(references: ReferencesDep, model: str | None = None) -> Response:
    """The reference profiles held, per model version (without the profiles themselves)."""
    found = await run_in_threadpool(references.list, model)
    return json_response({"profiles": [r.summary() for r in found]})


@router.get("/{model}/{version}")
async def get_profile(model: str, version: str, references: ReferencesDep) -> Response:
    """A version's reference profile (fetched from MLflow the first time it is asked for)."""
    reference = await run_in_threadpool(references.get, model, version)
    if reference is None:
        raise NotFound(
            f"no reference profile for {model} version {version}: register one with PUT, or "
            "register the version in MLflow with reference_profile.json beside the model"
        )
    return json_response({**reference.summary(), "profile": reference.profile.to_dict()})


@router.put("/{model}/{version}")
async def put_profile(
    model: str, version: str, body: BodyDep, references: ReferencesDep
) -> Response:
    """Register a version's reference profile: ``{"profile": {...}, "metrics": {...}?}``."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profile"), dict):
        raise InvalidInput('body must be {"profile": {...}, "metrics": {...}}')
    unknown = set(data) - {"profile", "metrics"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise InvalidInput("'metrics' must be an object of name: number")
    reference = await run_in_threadpool(
        references.put, model, version, data["profile"], metrics, "api"
    )
    return json_response(reference.summary(), status_code=201)
