"""Fixtures: databases (a SQLite file, a real PostgreSQL server) and in-process services."""

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
from orchard_evaluation.app import create_app
from orchard_evaluation.settings import EvaluationSettings


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evaluation.db'}"


@dataclass
class Evaluation:
    """A running in-process evaluation service and what tests look at."""

    app: FastAPI
    client: httpx2.AsyncClient
    registry: CollectorRegistry
    settings: EvaluationSettings

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


MakeEvaluation = Callable[..., AbstractAsyncContextManager[Evaluation]]


@pytest.fixture
def make_evaluation(sqlite_url: str) -> MakeEvaluation:
    """Start the service (lifespan included) with settings overrides."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Evaluation]:
        values: dict[str, Any] = {"database_url": sqlite_url, "log_json": False}
        values.update(overrides)
        settings = EvaluationSettings(**values)
        registry = new_registry()
        app = create_app(settings, registry=registry)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://evaluation") as c:
                yield Evaluation(app, c, registry, settings)

    return start


@pytest.fixture
async def evaluation(make_evaluation: MakeEvaluation) -> AsyncIterator[Evaluation]:
    async with make_evaluation() as running:
        yield running
