"""The evaluation service's app factory: core app + database + background work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from orchard_core import create_app as create_core_app
from orchard_core import new_registry
from orchard_core.app import cancel_all, package_version
from orchard_evaluation.api.router import API_ROUTERS
from orchard_evaluation.background import every, maintain, profile_continuously
from orchard_evaluation.db import Database
from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.monitor import Monitor, MonitorGauges
from orchard_evaluation.profiler import WindowProfiler
from orchard_evaluation.references import MlflowReferenceLoader, ReferenceStore
from orchard_evaluation.reports import Reporter, report_periodically
from orchard_evaluation.settings import EvaluationSettings
from orchard_evaluation.store import EventStore
from orchard_evaluation.triggers import TriggerSender
from orchard_evaluation.windows import WindowStore

__all__ = ["create_app"]


def create_app(
    settings: EvaluationSettings,
    *,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """Build the evaluation app; its lifespan opens (and migrates) the database."""
    registry = registry if registry is not None else new_registry()
    metrics = EvaluationMetrics(registry)
    gauges = MonitorGauges(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await run_in_threadpool(Database.open, settings.database_url)
        app.state.database = database
        app.state.store = EventStore(database)
        loader = (
            MlflowReferenceLoader(settings.mlflow_tracking_uri)
            if settings.mlflow_tracking_uri
            else None
        )
        app.state.references = ReferenceStore(database, loader, settings.reference_retry_s)
        app.state.triggers = TriggerSender(
            database,
            metrics,
            retraining_url=settings.retraining_url,
            cooldown_s=settings.trigger_cooldown_s,
            max_age_s=settings.trigger_max_age_s,
        )
        windows = WindowStore(database, settings.bucket_s, settings.rollup_s)
        app.state.windows = windows
        profiler = WindowProfiler(
            database,
            app.state.references,
            metrics,
            windows,
            batch_size=settings.profile_batch_size,
            reference_wait_s=settings.reference_wait_s,
        )
        app.state.profiler = profiler
        app.state.monitor = Monitor(
            database, windows, app.state.references, app.state.triggers, gauges, settings
        )
        tasks = [
            asyncio.create_task(app.state.triggers.run(), name="trigger-delivery"),
            asyncio.create_task(profile_continuously(profiler, settings), name="profiling"),
            asyncio.create_task(maintain(app.state.store, metrics, settings), name="retention"),
            asyncio.create_task(
                report_periodically(
                    Reporter(database, app.state.references, settings.reports_dir),
                    windows,
                    settings.report_interval_s,
                ),
                name="reports",
            ),
        ]
        if settings.monitor_interval_s > 0:
            tasks.append(
                asyncio.create_task(
                    every(settings.monitor_interval_s, "monitoring", app.state.monitor.run_pass),
                    name="monitoring",
                )
            )
        try:
            yield
        finally:
            await cancel_all(tasks)
            app.state.store = None
            database.close()

    app = create_core_app(
        settings,
        title="Orchard evaluation",
        version=package_version("orchard-evaluation"),
        routers=API_ROUTERS,
        lifespan=lifespan,
        registry=registry,
        span_exporter=span_exporter,
    )
    app.state.metrics = metrics
    return app
