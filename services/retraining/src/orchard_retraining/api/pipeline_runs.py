"""Pipeline runs: start one by hand, follow it (status, progress, logs), cancel it."""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from orchard_core.errors import InvalidInput
from orchard_core.responses import json_response
from orchard_retraining.deps import BodyDep, PipelineRunsDep, RunnerDep
from orchard_retraining.runs import run_dict
from orchard_retraining.runs.store import STATUSES
from orchard_retraining.tables import PipelineRunRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1/pipeline-runs", tags=["pipeline-runs"])
_FIELDS: Final = frozenset({"model", "options", "auto_rollout", "actor", "reason"})


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


def _text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not value or len(value) > limit):
        raise InvalidInput(f"{name!r} must be a non-empty string of at most {limit} characters")
    return value


@router.post("", status_code=201)
async def start_run(body: BodyDep, runner: RunnerDep) -> Response:
    """Start a pipeline run: retrain a model, judge the candidate, maybe roll it out."""
    data = _object(body)
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidInput(
            f"unknown field(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(_FIELDS))})"
        )
    model = _text(data, "model", 200)
    if model is None:
        raise InvalidInput("'model' is required")
    auto_rollout = data.get("auto_rollout")
    if auto_rollout is not None and not isinstance(auto_rollout, bool):
        raise InvalidInput("'auto_rollout' must be true or false")
    actor, reason = _text(data, "actor", 200), _text(data, "reason", 2000)
    options = data.get("options")

    def submit() -> PipelineRunRecord:
        return runner.submit(
            model, options=options, auto_rollout=auto_rollout, actor=actor, reason=reason
        )

    record = await run_in_threadpool(submit)
    return json_response(run_dict(record), status_code=201)


@router.get("")
async def list_runs(
    runs: PipelineRunsDep,
    model: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Pipeline runs, newest first."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}")
    records = await run_in_threadpool(runs.list, model, status, limit)
    return json_response({"pipeline_runs": [run_dict(r) for r in records]})


@router.get("/{run_id}")
async def get_run(run_id: int, runs: PipelineRunsDep) -> Response:
    """One pipeline run: progress, result, the gate's verdict and the rollout it started."""
    return json_response(run_dict(await run_in_threadpool(runs.get, run_id)))


@router.get("/{run_id}/logs", response_class=PlainTextResponse)
async def get_logs(
    run_id: int, runner: RunnerDep, tail: Annotated[int | None, Query(ge=1, le=100_000)] = None
) -> PlainTextResponse:
    """The run's log so far (the last ``tail`` lines)."""
    return PlainTextResponse(await run_in_threadpool(runner.logs, run_id, tail))


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: int, body: BodyDep, runner: RunnerDep) -> Response:
    """Cancel a pending or running run (409 once it has finished)."""
    data = _object(body, empty_ok=True)
    unknown = set(data) - {"actor", "reason"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    _text(data, "reason", 2000)
    return json_response(run_dict(await runner.cancel(run_id, _text(data, "actor", 200))))
