"""The runtime's app factory: settings in, a FastAPI app out; models load in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from orchard_core import create_app as create_service_app
from orchard_core import new_registry
from orchard_inference.api.router import api_router
from orchard_inference.dataplane import DataPlane, ModelRunner
from orchard_inference.flavors import ModelLoader, default_loaders
from orchard_inference.metrics import InferenceMetrics
from orchard_inference.repository import ModelRepository
from orchard_inference.settings import InferenceSettings
from orchard_inference.sources import MlflowModelSource, ModelSource

__all__ = ["create_app"]


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
        settings: validated settings (``settings.models`` are loaded at start-up).
        registry: Prometheus registry (a fresh one if not given).
        source: where model URIs resolve (the MLflow registry and local paths by default).
        loaders: flavor loaders, most specific first (the built-in ones by default).
        runner: where predictions run (inline on the event loop by default).
    """
    registry = registry if registry is not None else new_registry()
    metrics = InferenceMetrics(registry)
    repository = ModelRepository(
        source if source is not None else MlflowModelSource(),
        loaders
        if loaders is not None
        else default_loaders(torch_threads=settings.torch_threads, device=settings.device),
        metrics,
    )
    dataplane = DataPlane(repository, metrics, configured=settings.models, runner=runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository.start(settings.models)
        try:
            yield
        finally:
            await repository.close()

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
