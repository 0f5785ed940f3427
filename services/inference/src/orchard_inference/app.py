"""The runtime's app factory: settings in, a FastAPI app out; models load in its lifespan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from orchard_core import create_app as create_service_app
from orchard_core import new_registry
from orchard_inference.api.router import api_router
from orchard_inference.batching import BatchingRunner
from orchard_inference.dataplane import DataPlane, ModelRunner
from orchard_inference.flavors import ModelLoader, default_loaders
from orchard_inference.metrics import InferenceMetrics
from orchard_inference.model_cache import ModelBudget
from orchard_inference.repository import ModelRepository
from orchard_inference.settings import InferenceSettings
from orchard_inference.sources import MlflowModelSource, ModelSource

__all__ = ["create_app"]


def _registry_configured() -> bool:
    """Whether the environment names an MLflow registry (lazy registry lookups need one)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_REGISTRY_URI"))


def create_app(
    settings: InferenceSettings,
    *,
    registry: CollectorRegistry | None = None,
    source: ModelSource | None = None,
    loaders: Sequence[ModelLoader] | None = None,
    runner: ModelRunner | None = None,
) -> FastAPI:
    """Build the inference runtime; the configured models start loading when it starts.

    Args:
        settings: validated settings (``settings.startup_models`` load at start-up).
        registry: Prometheus registry (a fresh one if not given).
        source: where model URIs resolve (the MLflow registry and local paths by default).
        loaders: flavor loaders, most specific first (the built-in ones by default).
        runner: where predictions run (by default a ``BatchingRunner`` configured by the
            ``BATCH_*`` and ``BATCHING`` settings).
    """
    registry = registry if registry is not None else new_registry()
    metrics = InferenceMetrics(registry)
    repository = ModelRepository(
        source if source is not None else MlflowModelSource(),
        loaders
        if loaders is not None
        else default_loaders(
            torch_threads=settings.torch_threads,
            device=settings.device,
            torch_fp16=settings.torch_fp16,
        ),
        metrics,
        configured=settings.startup_models,
        registry_lookup=settings.lazy_load_registry
        and (source is not None or _registry_configured()),
        budget=ModelBudget(
            max_models=settings.max_models,
            memory_bytes=None
            if settings.memory_budget_mb is None
            else int(settings.memory_budget_mb * 2**20),
        ),
        retry_seconds=settings.load_retry_seconds,
    )
    batching = BatchingRunner.from_settings(settings) if runner is None else None
    dataplane = DataPlane(
        repository, metrics, configured=settings.startup_models, runner=runner or batching
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository.start(settings.startup_models if settings.load_at_startup else {})
        try:
            yield
        finally:
            await repository.close()
            if batching is not None:
                batching.close()  # after the repository: in-flight calls have finished

    app = create_service_app(
        settings,
        title="Orchard inference runtime",
        version=dataplane.server_metadata()["version"],
        routers=[api_router],
        lifespan=lifespan,
        readiness=dataplane.not_ready_reason,
        registry=registry,
    )
    app.state.dataplane = dataplane
    return app
