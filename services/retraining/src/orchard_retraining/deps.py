"""Dependencies the routes take, as typed ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from orchard_core.errors import ServiceUnavailable
from orchard_core.requests import read_limited_body
from orchard_retraining.controller import RolloutController
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.runs import PipelineRunner, PipelineRunStore
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.triggers import TriggerIntake

__all__ = [
    "BodyDep",
    "ControllerDep",
    "IntakeDep",
    "MetricsDep",
    "PipelineRunsDep",
    "RolloutsDep",
    "RunnerDep",
]


async def get_intake(request: Request) -> TriggerIntake:
    """Where triggers are recorded."""
    return cast(TriggerIntake, request.app.state.intake)


async def get_rollouts(request: Request) -> RolloutStore:
    """Where rollouts are kept."""
    return cast(RolloutStore, request.app.state.rollouts)


async def get_pipeline_runs(request: Request) -> PipelineRunStore:
    """Where pipeline runs are kept."""
    return cast(PipelineRunStore, request.app.state.pipeline_runs)


async def get_runner(request: Request) -> PipelineRunner:
    """The pipeline runner; 503 when the service has no MLflow to run pipelines with."""
    runner = cast(PipelineRunner | None, request.app.state.runner)
    if runner is None:
        raise ServiceUnavailable(
            "pipeline runs need MLflow: set ORCHARD_RETRAINING_MLFLOW_TRACKING_URI"
        )
    return runner


async def get_controller(request: Request) -> RolloutController:
    """The rollout controller (it carries out what rollout events decide)."""
    return cast(RolloutController, request.app.state.controller)


async def get_metrics(request: Request) -> RetrainingMetrics:
    """The service's own metrics."""
    return cast(RetrainingMetrics, request.app.state.metrics)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past ``max_body_bytes``."""
    settings = cast(RetrainingSettings, request.app.state.settings)
    return await read_limited_body(
        request,
        settings.max_body_bytes,
        owner="the retraining service",
        setting="ORCHARD_RETRAINING_MAX_BODY_BYTES",
    )


IntakeDep = Annotated[TriggerIntake, Depends(get_intake)]
MetricsDep = Annotated[RetrainingMetrics, Depends(get_metrics)]
BodyDep = Annotated[bytes, Depends(read_body)]
RolloutsDep = Annotated[RolloutStore, Depends(get_rollouts)]
ControllerDep = Annotated[RolloutController, Depends(get_controller)]
PipelineRunsDep = Annotated[PipelineRunStore, Depends(get_pipeline_runs)]
RunnerDep = Annotated[PipelineRunner, Depends(get_runner)]
