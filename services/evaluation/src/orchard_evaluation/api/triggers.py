"""The retraining triggers this service has raised: the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.responses import json_response
from orchard_evaluation.deps import TriggersDep

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["triggers"])


@router.get("/triggers")
async def list_triggers(
    triggers: TriggersDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Recent retraining triggers, newest first, with their delivery status."""
    history = await run_in_threadpool(triggers.history, model, limit)
    return json_response({"triggers": history})
