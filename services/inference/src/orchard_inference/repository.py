"""The model repository: names → versions → loaded models, and their loading and unloading.

Each name has a *current* version that unversioned requests use: the version loaded last,
unless a later load failed while an older version still serves (then the older one stays
current, and the failed attempt is visible under its own version). Loads of one name are
serialized; different names load concurrently, in worker threads, so the server keeps
answering while models download and deserialize.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchard_core import ModelNotFound
from orchard_inference.flavors import ModelLoader, Predictor, choose_loader
from orchard_inference.metrics import UNRESOLVED, InferenceMetrics
from orchard_inference.model import ModelState, ServedModel
from orchard_inference.schema import InputSchema
from orchard_inference.signature import input_schema
from orchard_inference.sources import ModelLocation, ModelSource

__all__ = ["ModelRepository"]

_log = logging.getLogger("orchard.inference.repository")
_MAX_REASON = 500


@dataclass(eq=False)
class _Record:
    current: ServedModel
    versions: dict[str, ServedModel] = field(default_factory=dict)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class ModelRepository:
    """Every model this runtime serves, by name and version."""

    def __init__(
        self, source: ModelSource, loaders: Sequence[ModelLoader], metrics: InferenceMetrics
    ) -> None:
        self._source = source
        self._loaders = tuple(loaders)
        self._metrics = metrics
        self._records: dict[str, _Record] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._startup: set[str] = set()
        self._tasks: set[asyncio.Task[ServedModel]] = set()

    # -- lookups (no awaits: safe on the hot path) -------------------------------------------

    def names(self) -> list[str]:
        """The names of every model known here, in load order."""
        return list(self._records)

    def versions(self, name: str) -> list[str]:
        """The known versions of ``name`` (any state)."""
        record = self._records.get(name)
        return list(record.versions) if record is not None else []

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model ``name`` at ``version`` (its current version when None).

        Raises:
            ModelNotFound: no such model, or no such version of it.
        """
        record = self._records.get(name)
        if record is None:
            raise ModelNotFound(f"model '{name}' is not loaded here")
        if version is None:
            return record.current
        served = record.versions.get(version)
        if served is None:
            known = ", ".join(record.versions) or "none"
            raise ModelNotFound(f"model '{name}' has no version '{version}' (versions: {known})")
        return served

    def index(self) -> list[dict[str, Any]]:
        """Every version of every model with its state (the repository index)."""
        entries = []
        for record in self._records.values():
            shown = list(record.versions.values())
            if record.current not in shown:
                shown.append(record.current)
            for served in shown:
                entry: dict[str, Any] = {
                    "name": served.name,
                    "version": served.version,
                    "state": served.state.value,
                    "current": served is record.current,
                }
                if served.reason is not None:
                    entry["reason"] = served.reason
                entries.append(entry)
        return entries

    def not_ready_reason(self) -> str | None:
        """None when every start-up model serves, else why not (for readiness probes)."""
        reasons = []
        for name in sorted(self._startup):
            record = self._records.get(name)
            if record is not None and record.current.state is not ModelState.READY:
                reasons.append(record.current.not_ready_message())
        return "; ".join(reasons) or None

    # -- loading -------------------------------------------------------------------------------

    def start(self, models: Mapping[str, str]) -> None:
        """Begin loading the start-up models in the background (call inside a running loop)."""
        for name, uri in models.items():
            self._startup.add(name)
            attempt = self._begin(name, uri)
            task = asyncio.create_task(self._load_locked(attempt), name=f"load-{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def started(self) -> None:
        """Wait until every start-up load has finished, READY or FAILED."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def load(self, name: str, uri: str) -> ServedModel:
        """Load (or reload) ``name`` from ``uri``; returns the attempt, READY or FAILED."""
        async with self._lock(name):
            return await self._complete(self._begin(name, uri))

    async def unload(self, name: str, version: str | None = None) -> None:
        """Stop serving ``name`` (all versions, or just ``version``).

        Raises:
            ModelNotFound: no such model or version.
        """
        async with self._lock(name):
            record = self._records.get(name)
            if record is None:
                raise ModelNotFound(f"model '{name}' is not loaded here")
            if version is None:
                gone = [*record.versions.values(), record.current]
                del self._records[name]
                self._startup.discard(name)
            else:
                gone = [self.get(name, version)]
                del record.versions[version]
                if record.current is gone[0]:
                    self._pick_current(name, record)
            for served in {id(s): s for s in gone}.values():
                self._release(served)
            if version is None:
                self._metrics.forget(name, UNRESOLVED)

    async def close(self) -> None:
        """Stop pending loads and release every model (end of the app's lifespan)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for name in list(self._records):
            record = self._records.pop(name)
            for served in {id(s): s for s in [*record.versions.values(), record.current]}.values():
                served.release()

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _pick_current(self, name: str, record: _Record) -> None:
        remaining = list(record.versions.values())
        if not remaining:
            del self._records[name]
            return
        ready = [s for s in remaining if s.state is ModelState.READY]
        record.current = (ready or remaining)[-1]

    def _release(self, served: ServedModel) -> None:
        served.release()
        self._metrics.forget(served.name, served.version or UNRESOLVED)

    def _begin(self, name: str, uri: str) -> ServedModel:
        attempt = ServedModel(name, uri)
        record = self._records.get(name)
        if record is None:
            self._records[name] = _Record(current=attempt)
        elif record.current.state is not ModelState.READY:
            record.current = attempt  # nothing serves yet: show the new attempt's progress
        return attempt

    async def _load_locked(self, attempt: ServedModel) -> ServedModel:
        async with self._lock(attempt.name):
            return await self._complete(attempt)

    async def _complete(self, attempt: ServedModel) -> ServedModel:
        name = attempt.name
        started = time.perf_counter()
        try:
            location = await asyncio.to_thread(self._source.resolve, attempt.uri)
            # setdefault: the name may have been unloaded while this start-up load queued.
            record = self._records.setdefault(name, _Record(current=attempt))
            existing = record.versions.get(location.version)
            if existing is not None and existing.state is ModelState.READY:
                _log.info("model %s version %s already loaded", name, location.version)
                record.current = existing
                return existing
            attempt.version = location.version
            attempt.metrics = self._metrics.bind(name, location.version)
            self._metrics.set_state(name, location.version, ModelState.LOADING)
            schema, predictor, workdir = await asyncio.to_thread(self._read, location)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(attempt, exc, time.perf_counter() - started)
        attempt.schema, attempt.predictor, attempt.workdir = schema, predictor, workdir
        attempt.state = ModelState.READY
        record = self._records.setdefault(name, _Record(current=attempt))
        record.versions[location.version] = attempt
        record.current = attempt
        elapsed = time.perf_counter() - started
        self._metrics.set_state(name, location.version, ModelState.READY)
        self._metrics.forget(name, UNRESOLVED)  # an earlier attempt that never resolved
        self._metrics.loaded(name, location.version, elapsed, ok=True)
        _log.info(
            "loaded model %s version %s (%s) in %.2fs",
            name,
            location.version,
            predictor.platform,
            elapsed,
            extra={"model": name, "version": location.version, "load_seconds": elapsed},
        )
        return attempt

    def _failed(self, attempt: ServedModel, exc: Exception, elapsed: float) -> ServedModel:
        attempt.state = ModelState.FAILED
        attempt.reason = _reason(exc)
        version = attempt.version or UNRESOLVED
        record = self._records.get(attempt.name)
        if record is not None and attempt.version is not None:
            record.versions[attempt.version] = attempt
        self._metrics.set_state(attempt.name, version, ModelState.FAILED)
        self._metrics.loaded(attempt.name, version, elapsed, ok=False)
        _log.error(
            "failed to load model %s from %s: %s",
            attempt.name,
            attempt.uri,
            attempt.reason,
            extra={"model": attempt.name, "uri": attempt.uri},
        )
        return attempt

    def _read(self, location: ModelLocation) -> tuple[InputSchema, Predictor, str | None]:
        """Fetch and deserialize a model (blocking, in a worker thread)."""
        from mlflow.models import Model

        workdir = None if location.local_path else tempfile.mkdtemp(prefix="orchard-model-")
        try:
            path = self._source.fetch(location, workdir or "")
            mlmodel = Model.load(path)
            schema = input_schema(mlmodel.signature, mlmodel.metadata)
            loader = choose_loader(self._loaders, mlmodel.flavors)
            return schema, loader.load(path, mlmodel, schema), workdir
        except BaseException:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
