"""The retraining service's app factory: core app + database + background work."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_core.app import cancel_all, package_version
from orchard_core.tracing import tracer_for
from orchard_retraining.api.router import API_ROUTERS
from orchard_retraining.controller import build_controller, build_traffic_backend
from orchard_retraining.db import Database
from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import ModelRegistry
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.runs.protocols import RunRegistry
from orchard_retraining.runs.store import PipelineRunStore
from orchard_retraining.runs.wiring import build_pipeline_runner
from orchard_retraining.schedules import ScheduleRunner
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.triggers import TriggerIntake

__all__ = ["create_app"]


def create_app(
    settings: RetrainingSettings,
    *,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
    traffic_backend: TrafficBackend | None = None,
    retire_grace_s: float = 5.0,
    clock: Callable[[], float] = time.time,
    run_registry: RunRegistry | None = None,
) -> FastAPI:
    """Build the retraining app; its lifespan opens (and migrates) the database.

    ``traffic_backend`` replaces the one the settings name (tests pass their own);
    ``retire_grace_s`` and ``clock`` are the rollout controller's; ``run_registry`` replaces
    MLflow for pipeline runs (tests).
    """
    registry = registry if registry is not None else new_registry()
    metrics = RetrainingMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await run_in_threadpool(Database.open, settings.database_url)
        app.state.database = database
        app.state.intake = TriggerIntake(
            database, settings.trigger_cooldown_s, retry_after_s=settings.trigger_retry_after_s
        )
        app.state.rollouts = RolloutStore(database)
        app.state.schedules = ScheduleRunner(settings.schedules, app.state.intake, time.time())
        tasks = [asyncio.create_task(app.state.schedules.run(), name="schedules")]
        # The rollout controller: evaluation's verdicts, MLflow aliases, traffic, route table.
        http = aiohttp.ClientSession()
        uri = settings.mlflow_tracking_uri
        app.state.model_registry = ModelRegistry(uri) if uri else None
        traffic = traffic_backend or await run_in_threadpool(build_traffic_backend, settings)
        controller = build_controller(
            settings, app.state.rollouts, metrics, http,
            registry=app.state.model_registry, traffic=traffic,
            retire_grace_s=retire_grace_s, clock=clock,
        )  # fmt: skip
        app.state.controller = controller
        await run_in_threadpool(controller.observe_all)
        tasks.append(asyncio.create_task(controller.run(), name="rollout-controller"))
        # Pipeline runs need MLflow (versions, the gate's holdout, clean-up): without it the
        # runs API answers 503 and triggers lead to nothing. Candidates that pass the gate
        # are rolled out through the rollout controller.
        app.state.pipeline_runs = PipelineRunStore(database)
        app.state.runner = None
        runs_registry = run_registry or app.state.model_registry
        if runs_registry is not None:
            app.state.runner = runner = build_pipeline_runner(
                settings,
                app.state.pipeline_runs,
                runs_registry,
                metrics,
                ledger=app.state.intake,
                starter=controller,
                tracer=tracer_for(app, "orchard_retraining"),
            )
            if settings.auto_retrain:
                app.state.intake.on_accepted = runner.submit_for_trigger
            tasks.append(asyncio.create_task(runner.run(), name="pipeline-runs"))
        try:
            yield
        finally:
            await cancel_all(tasks)
            await controller.close()  # rollout controller
            await http.close()  # rollout controller
            if app.state.runner is not None:
                await run_in_threadpool(app.state.runner.close)
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
