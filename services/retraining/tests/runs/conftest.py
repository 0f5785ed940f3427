"""Fixtures: a pipeline runner over the local backend running ``fake_train.py``, with a fake
registry (or a real MLflow) and a fake rollout starter."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from orchard_core.errors import NotFound
from orchard_retraining.db import Database
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import RegistryUnavailable
from orchard_retraining.runs import LocalPipelineBackend, PipelineRunner, PipelineRunStore
from orchard_retraining.runs.protocols import RunRegistry, TriggerLedger
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.tables import PipelineRunRecord, RolloutRecord

FAKE_TRAIN = Path(__file__).with_name("fake_train.py")


def fake_command(*options: str) -> list[str]:
    return [sys.executable, str(FAKE_TRAIN), *options]


@dataclass
class FakeRegistry:
    """The registry calls the runner makes, kept in memory; ``down`` makes every call fail."""

    artifacts: Path
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # version -> tags
    aliases: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    down: bool = False

    def _up(self) -> None:
        if self.down:
            raise RegistryUnavailable("MLflow failed: connection refused")

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        self._up()
        source = self.artifacts / run_id / path
        if not source.is_file():
            raise NotFound(f"run {run_id} has no artifact {path!r}")
        return Path(shutil.copy(source, destination / source.name))

    def run_tags(self, run_id: str) -> dict[str, str]:
        self._up()
        return {"orchard.gate.task": "binary"}

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._up()
        self.versions.setdefault(version, {})[key] = value

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._up()
        self.aliases[alias] = version

    def alias_version(self, model: str, alias: str) -> str | None:
        self._up()
        return self.aliases.get(alias)

    def remove_alias(self, model: str, alias: str) -> None:
        self._up()
        self.aliases.pop(alias, None)

    def versions_tagged(self, model: str, key: str, value: str) -> list[str]:
        self._up()
        return [v for v, tags in self.versions.items() if tags.get(key) == value]

    def delete_version(self, model: str, version: str) -> None:
        self._up()
        self.versions.pop(version, None)
        self.deleted.append(version)


@dataclass
class FakeStarter:
    """Records the rollouts it is asked to start."""

    started: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    error: Exception | None = None

    async def start(self, spec_data: dict[str, Any], actor: str | None) -> tuple[Any, Any]:
        if self.error is not None:
            raise self.error
        self.started.append((spec_data, actor))
        return RolloutRecord(id=len(self.started) + 100), None


@dataclass
class Harness:
    runner: PipelineRunner
    backend: LocalPipelineBackend
    store: PipelineRunStore
    registry: RunRegistry
    starter: FakeStarter
    metrics_registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics_registry.get_sample_value(name, labels) or 0.0

    async def until(
        self, run_id: int, done: Callable[[PipelineRunRecord], bool], timeout_s: float = 60.0
    ) -> PipelineRunRecord:
        """Tick until ``done(run)`` holds (a real process has to finish), or fail."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.runner.tick()
            record = self.store.get(run_id)
            if done(record):
                return record
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} still {record.status} ({record.stage})")
            await asyncio.sleep(0.05)

    async def finished(self, run_id: int, timeout_s: float = 60.0) -> PipelineRunRecord:
        return await self.until(run_id, lambda r: r.status not in ("pending", "running"), timeout_s)


MakeHarness = Callable[..., Harness]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(f"sqlite:///{tmp_path / 'runs.db'}")
    yield db
    db.close()


@pytest.fixture
def make_harness(tmp_path: Path, database: Database) -> MakeHarness:
    def make(
        *options: str,
        registry: RunRegistry | None = None,
        db: Database | None = None,
        ledger: TriggerLedger | None = None,
        **overrides: Any,
    ) -> Harness:
        artifacts = tmp_path / "artifacts"
        values: dict[str, Any] = {
            "database_url": "sqlite://",
            "pipeline_command": fake_command(*options, "--artifacts", str(artifacts)),
            "runs_dir": tmp_path / "runs",
            "log_json": False,
        }
        values.update(overrides)
        settings = RetrainingSettings(**values)
        metrics_registry = CollectorRegistry()
        backend = LocalPipelineBackend(settings.pipeline_command, settings.runs_dir, kill_grace_s=2)
        store = PipelineRunStore(db or database)
        fake = registry if registry is not None else FakeRegistry(artifacts)
        starter = FakeStarter()
        runner = PipelineRunner(
            store,
            backend,
            fake,
            settings,
            RetrainingMetrics(metrics_registry),
            starter=starter,
            ledger=ledger,
        )
        return Harness(runner, backend, store, fake, starter, metrics_registry)

    return make
