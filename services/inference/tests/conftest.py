"""Fixtures: small real MLflow models on disk, and in-process runtimes serving them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import torch
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_inference import DataPlane, InferenceSettings, ModelSource, create_app

from .factories import (
    CreditModel,
    DigitsModel,
    credit_pipeline,
    digits_network,
    save_credit_model,
    save_digits_model,
)


@pytest.fixture(scope="session")
def credit_model(tmp_path_factory: pytest.TempPathFactory) -> CreditModel:
    pipeline = credit_pipeline()
    path = save_credit_model(tmp_path_factory.mktemp("credit") / "model", pipeline)
    return CreditModel(path, pipeline)


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> DigitsModel:
    network = digits_network()
    path = save_digits_model(tmp_path_factory.mktemp("digits") / "model", network)
    return DigitsModel(path, network)


@dataclass
class Runtime:
    """A started in-process runtime and what tests look at."""

    app: FastAPI
    client: httpx2.AsyncClient
    registry: CollectorRegistry

    @property
    def dataplane(self) -> DataPlane:
        dataplane: DataPlane = self.app.state.dataplane
        return dataplane

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


MakeRuntime = Callable[..., AbstractAsyncContextManager[Runtime]]


@pytest.fixture
def make_runtime() -> MakeRuntime:
    """Start a runtime serving ``models`` ({name: uri}); start-up loads finish before use."""

    @asynccontextmanager
    async def start(
        models: dict[str, str], source: ModelSource | None = None, **overrides: Any
    ) -> AsyncIterator[Runtime]:
        settings = InferenceSettings(models=models, log_json=False, **overrides)
        registry = new_registry()
        app = create_app(settings, registry=registry, source=source)
        # The runtime sets torch's intra-op threads in the thread that predicts, which here is
        # the test's own thread: restore them for the rest of the session.
        torch_threads = torch.get_num_threads()
        try:
            async with app.router.lifespan_context(app):
                await app.state.dataplane.repository.started()
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(
                    transport=transport, base_url="http://runtime"
                ) as client:
                    yield Runtime(app, client, registry)
        finally:
            torch.set_num_threads(torch_threads)

    return start


@pytest.fixture
async def runtime(
    make_runtime: MakeRuntime, credit_model: CreditModel, digits_model: DigitsModel
) -> AsyncIterator[Runtime]:
    """Serves credit-risk and digits from local directories (both version 1)."""
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    async with make_runtime(models) as running:
        yield running
