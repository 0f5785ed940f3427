"""Rollouts: start one, see it, promote or abort it by hand."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_retraining.deps import BodyDep, ControllerDep, RolloutsDep
from orchard_retraining.rollout_store import rollout_dict
from orchard_retraining.rollouts import ManualAbort, ManualPromote

__all__ = ["router"]

router = APIRouter(prefix="/v1/rollouts", tags=["rollouts"])


def _object(body: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    if empty_ok and not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("body must be a JSON object")
    return data


def _by_hand(data: dict[str, Any]) -> tuple[str | None, str]:
    unknown = set(data) - {"actor", "reason"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    actor, reason = data.get("actor"), data.get("reason", "")
    if actor is not None and not isinstance(actor, str):
        raise InvalidInput("'actor' must be a string")
    if not isinstance(reason, str):
        raise InvalidInput("'reason' must be a string")
    return actor, reason


@router.post("", status_code=201)
async def start_rollout(body: BodyDep, controller: ControllerDep) -> Response:
    """Start a rollout (canary steps, A/B or shadow first) of a candidate version."""
    data = _object(body)
    actor = data.pop("actor", None)
    if actor is not None and not isinstance(actor, str):
        raise InvalidInput("'actor' must be a string")
    record, transition = await controller.start(data, actor)
    return json_response(rollout_dict(record, transition), status_code=201)


@router.get("")
async def list_rollouts(
    rollouts: RolloutsDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Rollouts, newest first."""
    records = await run_in_threadpool(rollouts.list, model, limit)
    return json_response({"rollouts": [rollout_dict(r) for r in records]})


@router.get("/{rollout_id}")
async def get_rollout(rollout_id: int, rollouts: RolloutsDep) -> Response:
    """One rollout: its spec, state, weights and every decision so far."""
    return json_response(rollout_dict(await run_in_threadpool(rollouts.get, rollout_id)))


@router.post("/{rollout_id}/promote")
async def promote_rollout(rollout_id: int, body: BodyDep, controller: ControllerDep) -> Response:
    """Promote the candidate now: all traffic to it, alias champion moved (409 if finished)."""
    actor, reason = _by_hand(_object(body, empty_ok=True))
    record, transition = await controller.apply(
        rollout_id, ManualPromote(actor=actor, reason=reason)
    )
    return json_response(rollout_dict(record, transition))


@router.post("/{rollout_id}/abort")
async def abort_rollout(rollout_id: int, body: BodyDep, controller: ControllerDep) -> Response:
    """Abort now: all traffic back to the champion, aliases restored (409 if finished)."""
    actor, reason = _by_hand(_object(body, empty_ok=True))
    record, transition = await controller.apply(rollout_id, ManualAbort(actor=actor, reason=reason))
    return json_response(rollout_dict(record, transition))
