"""The retraining service's app factory: core app + database + background work."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_core.app import cancel_all, package_version
from orchard_retraining.api.router import API_ROUTERS
from orchard_retraining.db import Database
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.schedules import ScheduleRunner
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.triggers import TriggerIntake

__all__ = ["create_app"]


def create_app(
    settings: RetrainingSettings,
    *,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """Build the retraining app; its lifespan opens (and migrates) the database."""
    registry = registry if registry is not None else new_registry()
    metrics = RetrainingMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await run_in_threadpool(Database.open, settings.database_url)
        app.state.database = database
        app.state.intake = TriggerIntake(database, settings.trigger_cooldown_s)
        app.state.rollouts = RolloutStore(database)
        app.state.schedules = ScheduleRunner(settings.schedules, app.state.intake, time.time())
        tasks = [asyncio.create_task(app.state.schedules.run(), name="schedules")]
        try:
            yield
        finally:
            await cancel_all(tasks)
            database.close()

    app = create_core_app(
        settings,
        title="Orchard retraining",
        version=package_version("orchard-retraining"),
        routers=API_ROUTERS,
        lifespan=lifespan,
        registry=registry,
        span_exporter=span_exporter,
    )
    app.state.metrics = metrics
    return app
