"""Fixtures: the retraining service in-process, on a SQLite file by default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from orchard_core import new_registry
from orchard_retraining.app import create_app
from orchard_retraining.settings import RetrainingSettings


@dataclass
class Retraining:
    """A running in-process retraining service and what tests look at."""

    app: FastAPI
    client: httpx2.AsyncClient
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


MakeRetraining = Callable[..., AbstractAsyncContextManager[Retraining]]


@pytest.fixture
def make_retraining(tmp_path: Path) -> MakeRetraining:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Retraining]:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'retraining.db'}",
            "log_json": False,
        }
        values.update(overrides)
        registry = new_registry()
        app = create_app(RetrainingSettings(**values), registry=registry)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://retraining") as c:
                yield Retraining(app, c, registry)

    return start


@pytest.fixture
async def retraining(make_retraining: MakeRetraining) -> AsyncIterator[Retraining]:
    async with make_retraining() as running:
        yield running
