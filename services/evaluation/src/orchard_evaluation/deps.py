"""Dependencies the routes take, as typed ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from orchard_core.requests import read_limited_body
from orchard_evaluation.db import Database
from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.references import ReferenceStore
from orchard_evaluation.settings import EvaluationSettings
from orchard_evaluation.store import EventStore
from orchard_evaluation.triggers import TriggerSender
from orchard_evaluation.windows import WindowStore

__all__ = [
    "BodyDep",
    "DatabaseDep",
    "MetricsDep",
    "ReferencesDep",
    "SettingsDep",
    "StoreDep",
    "TriggersDep",
    "WindowsDep",
]


async def get_settings(request: Request) -> EvaluationSettings:
    """The service's settings."""
    return cast(EvaluationSettings, request.app.state.settings)


async def get_database(request: Request) -> Database:
    """The service's database."""
    return cast(Database, request.app.state.database)


async def get_references(request: Request) -> ReferenceStore:
    """Reference profiles per model version."""
    return cast(ReferenceStore, request.app.state.references)


async def get_store(request: Request) -> EventStore:
    """Where events and labels are written."""
    return cast(EventStore, request.app.state.store)


async def get_triggers(request: Request) -> TriggerSender:
    """Where retraining triggers are recorded and sent from."""
    return cast(TriggerSender, request.app.state.triggers)


async def get_windows(request: Request) -> WindowStore:
    """Window profiles: fine buckets and their rollups."""
    return cast(WindowStore, request.app.state.windows)


async def get_metrics(request: Request) -> EvaluationMetrics:
    """The service's own metrics."""
    return cast(EvaluationMetrics, request.app.state.metrics)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past ``max_body_bytes``."""
    settings = cast(EvaluationSettings, request.app.state.settings)
    return await read_limited_body(
        request,
        settings.max_body_bytes,
        owner="the evaluation service",
        setting="ORCHARD_EVALUATION_MAX_BODY_BYTES",
    )


SettingsDep = Annotated[EvaluationSettings, Depends(get_settings)]
StoreDep = Annotated[EventStore, Depends(get_store)]
MetricsDep = Annotated[EvaluationMetrics, Depends(get_metrics)]
BodyDep = Annotated[bytes, Depends(read_body)]
TriggersDep = Annotated[TriggerSender, Depends(get_triggers)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ReferencesDep = Annotated[ReferenceStore, Depends(get_references)]
WindowsDep = Annotated[WindowStore, Depends(get_windows)]
