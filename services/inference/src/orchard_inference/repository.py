"""The model repository: names → versions → loaded models; loading, unloading and eviction.

Each name has a *current* version that unversioned requests use: the version loaded last,
unless a later load failed while an older version still serves (then the older one stays
current, and the failed attempt is visible under its own version). Loads of one name are
serialized; different names load concurrently, in worker threads, so the server keeps
answering while models download and deserialize.

Lazy loading: a request (infer, metadata, readiness) for a model that is known but not loaded
loads it first. Known means configured (the start-up map), evicted earlier, or — when registry
lookups are on — a name that resolves as ``models:/<name>@champion``. Concurrent first
requests share one load: one task per name and version, which every waiter awaits. A
registry name that does not resolve is 404 (remembered for the retry back-off, so unknown
names do not hammer the registry). A model that fails to load is FAILED: answered 503 with
its reason, and loaded again by a request after the back-off, which doubles with each
consecutive failure. Explicitly unloaded names are not loaded lazily until loaded again.

Eviction and the model budget: ``model_cache``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from orchard_core import ModelNotFound
from orchard_inference.flavors import ModelLoader, Predictor, choose_loader
from orchard_inference.metrics import UNRESOLVED, InferenceMetrics
from orchard_inference.model import ModelState, ServedModel
from orchard_inference.model_cache import LoadedModels, ModelBudget, folder_bytes
from orchard_inference.schema import InputSchema
from orchard_inference.signature import input_schema
from orchard_inference.sources import ModelLocation, ModelSource

__all__ = ["REGISTRY_ALIAS", "ModelRepository"]

_log = logging.getLogger("orchard.inference.repository")
_MAX_REASON = 500
#: The registry alias a lazily loaded name resolves through.
REGISTRY_ALIAS = "champion"
#: The retry back-off doubles per consecutive failure up to this (or the base, if larger).
_MAX_BACKOFF_SECONDS = 600.0
#: Registry names remembered as unresolvable (oldest forgotten first).
_MAX_MISSING = 1024
#: Error codes of a registry lookup that mean "no such model" (MLflow's, and HTTP-ish).
#: INVALID_PARAMETER_VALUE: MLflow's answer for a registered model without the alias, or a
#: name it cannot hold; either way the name does not resolve. An outage raises other errors.
_MISSING_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})


@dataclass(eq=False)
class _Record:
    current: ServedModel
    versions: dict[str, ServedModel] = field(default_factory=dict)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _is_missing(exc: BaseException) -> bool:
    """Whether a resolve failure means "no such model", rather than an outage."""
    if isinstance(exc, LookupError | FileNotFoundError):
        return True
    return getattr(exc, "error_code", None) in _MISSING_CODES


class ModelRepository:
    """Every model this runtime serves, by name and version."""

    def __init__(
        self,
        source: ModelSource,
        loaders: Sequence[ModelLoader],
        metrics: InferenceMetrics,
        *,
        configured: Mapping[str, str] | None = None,
        registry_lookup: bool = False,
        budget: ModelBudget | None = None,
        retry_seconds: float = 30.0,
        measure: Callable[[str], int] = folder_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        source: resolves and fetches model URIs.
        loaders: flavor loaders, most specific first.
        metrics: the runtime's metrics.
        configured: {name: uri} that requests may load lazily (the start-up map).
        registry_lookup: load other names lazily from ``models:/<name>@champion``.
        budget: the model count and memory the loaded models may hold (no limit if None).
        retry_seconds: back-off before a request loads a failed model again.
        measure: a model directory's size estimate in bytes.
        clock: monotonic seconds (tests pass their own).
        """
        self._source = source
        self._loaders = tuple(loaders)
        self._metrics = metrics
        self._configured = dict(configured or {})
        self._registry_lookup = registry_lookup
        self._retry_seconds = retry_seconds
        self._measure = measure
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._startup: set[str] = set()
        self._tasks: set[asyncio.Task[ServedModel]] = set()
        self._lazy: dict[tuple[str, str | None], asyncio.Task[ServedModel]] = {}
        self._cache = LoadedModels(budget or ModelBudget(), metrics)
        self._unloaded: set[str] = set()
        self._missing: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._failures: dict[str, int] = {}
        self._metrics.models(0, 0)

    # -- lookups (no awaits: safe on the hot path) -------------------------------------------

    def names(self) -> list[str]:
        """The names of every model known here, in load order."""
        return list(self._records)

    def versions(self, name: str) -> list[str]:
        """The known versions of ``name`` (any state)."""
        record = self._records.get(name)
        return list(record.versions) if record is not None else []

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model ``name`` at ``version`` (its current version when None), as it is now.

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

    def loaded(self) -> list[ServedModel]:
        """The versions in memory, least recently used first."""
        return self._cache.in_memory()

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
        """None when every start-up model serves (or was evicted), else why not."""
        reasons = []
        for name in sorted(self._startup):
            record = self._records.get(name)
            if record is not None and record.current.state not in (
                ModelState.READY,
                ModelState.EVICTED,
            ):
                reasons.append(record.current.not_ready_message())
        return "; ".join(reasons) or None

    # -- lookups that load on demand ---------------------------------------------------------

    async def obtain(self, name: str, version: str | None = None) -> ServedModel:
        """The model ``name`` at ``version``, loaded first if it is known but not in memory.

        Returns without suspending when nothing needs loading (the hot path). The result may
        be FAILED (or LOADING, during a start-up or explicit load): the caller answers 503.

        Raises:
            ModelNotFound: not known here, or a registry name that does not resolve.
        """
        pending = self._lazy.get((name, version))
        if pending is not None:
            return await asyncio.shield(pending)
        record = self._records.get(name)
        if record is not None:
            served = self.get(name, version)
            current = served is record.current
            if served.state is ModelState.EVICTED and served.pinned_uri is not None:
                return await self._load_on_demand(name, version, served.pinned_uri, current)
            if served.state is ModelState.FAILED and self._retry_due(served):
                return await self._load_on_demand(name, version, served.uri, current)
            return served
        if name in self._unloaded:
            raise ModelNotFound(f"model '{name}' is not loaded here (it was unloaded)")
        uri = self._configured.get(name)
        registry = uri is None
        if uri is None:
            if not self._registry_lookup:
                raise ModelNotFound(f"model '{name}' is not loaded here")
            missing = self._missing.get(name)
            if missing is not None and missing[0] > self._clock():
                raise ModelNotFound(missing[1])
            uri = f"models:/{name}@{REGISTRY_ALIAS}"
        served = await self._load_on_demand(name, None, uri, True, registry=registry)
        return served if version is None else self.get(name, version)

    async def acquire(self, name: str, version: str | None = None) -> ServedModel:
        """``obtain``, then count a request in flight on it; pair with ``release``.

        A version with requests in flight is never evicted.
        """
        served = await self.obtain(name, version)
        for _ in range(3):  # evicted between its load and now: rare, but a retry serves it
            if served.state is not ModelState.EVICTED:
                break
            served = await self.obtain(name, version)
        served.in_flight += 1
        self._cache.touch(served)
        return served

    def release(self, served: ServedModel) -> None:
        """The request ``acquire`` counted is done (evicts what it held over budget)."""
        served.in_flight -= 1
        if self._cache.evict_pending and not served.in_flight:
            self._cache.enforce()

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
        self._unloaded.discard(name)
        self._missing.pop(name, None)
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
                self._unloaded.add(name)
            else:
                gone = [self.get(name, version)]
                del record.versions[version]
                if record.current is gone[0]:
                    self._pick_current(name, record)
            for served in {id(s): s for s in gone}.values():
                self._release(served)
            if version is None:
                self._metrics.forget(name, UNRESOLVED)
            self._cache.report()

    async def close(self) -> None:
        """Stop pending loads and release every model (end of the app's lifespan)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for name in list(self._records):
            record = self._records.pop(name)
            for served in {id(s): s for s in [*record.versions.values(), record.current]}.values():
                served.release()
        self._cache.clear()

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
        self._cache.forget(served)
        served.release()
        self._metrics.forget(served.name, served.version or UNRESOLVED)

    def _retry_due(self, served: ServedModel) -> bool:
        if served.failed_at is None:
            return False
        failures = min(self._failures.get(served.name, 1), 20)
        backoff = min(
            self._retry_seconds * (1 << (failures - 1)),
            max(self._retry_seconds, _MAX_BACKOFF_SECONDS),
        )
        return self._clock() - served.failed_at >= backoff

    async def _load_on_demand(
        self, name: str, version: str | None, uri: str, current: bool, *, registry: bool = False
    ) -> ServedModel:
        """Load lazily, once: concurrent requests for the same model await the same task."""
        key = (name, version)
        task = self._lazy.get(key)
        if task is None:
            task = asyncio.create_task(
                self._load_lazily(name, version, uri, current, registry),
                name=f"lazy-load-{name}",
            )
            self._lazy[key] = task
            self._tasks.add(task)
            task.add_done_callback(partial(self._lazy_done, key))
        # shield: a request that goes away (client disconnect) leaves the load to the others.
        return await asyncio.shield(task)

    def _lazy_done(self, key: tuple[str, str | None], task: asyncio.Task[ServedModel]) -> None:
        self._tasks.discard(task)
        if self._lazy.get(key) is task:
            del self._lazy[key]
        if not task.cancelled():
            task.exception()  # its waiters got it; not "never retrieved"

    def _settled(self, name: str, version: str | None) -> ServedModel | None:
        """The model if it needs no load now (another load finished while this one queued)."""
        record = self._records.get(name)
        if record is None:
            return None
        served = record.current if version is None else record.versions.get(version)
        if served is None or served.state is ModelState.EVICTED:
            return None
        if served.state is ModelState.FAILED and self._retry_due(served):
            return None
        return served

    async def _load_lazily(
        self, name: str, version: str | None, uri: str, current: bool, registry: bool
    ) -> ServedModel:
        async with self._lock(name):
            settled = self._settled(name, version)
            if settled is not None:
                return settled
            if name in self._unloaded:  # unloaded while this load queued
                raise ModelNotFound(f"model '{name}' is not loaded here (it was unloaded)")
            location = None
            if registry:
                started = time.perf_counter()
                try:
                    location = await asyncio.to_thread(self._source.resolve, uri)
                except Exception as exc:
                    if not _is_missing(exc):  # the registry is down, not the name unknown
                        attempt = self._begin(name, uri)
                        return self._failed(attempt, exc, time.perf_counter() - started)
                    message = (
                        f"model '{name}' is not loaded here, and {uri} does not resolve: "
                        f"{_reason(exc)}"
                    )
                    self._missing[name] = (self._clock() + self._retry_seconds, message)
                    while len(self._missing) > _MAX_MISSING:
                        self._missing.popitem(last=False)
                    raise ModelNotFound(message) from exc
            attempt = self._begin(name, uri, current=current)
            _log.info("loading model %s on demand from %s", name, uri, extra={"model": name})
            return await self._complete(attempt, location, current=current)

    def _begin(self, name: str, uri: str, *, current: bool = True) -> ServedModel:
        attempt = ServedModel(name, uri)
        record = self._records.get(name)
        if record is None:
            self._records[name] = _Record(current=attempt)
        elif current and record.current.state is not ModelState.READY:
            record.current = attempt  # nothing serves yet: show the new attempt's progress
        return attempt

    async def _load_locked(self, attempt: ServedModel) -> ServedModel:
        async with self._lock(attempt.name):
            return await self._complete(attempt)

    async def _complete(
        self, attempt: ServedModel, location: ModelLocation | None = None, *, current: bool = True
    ) -> ServedModel:
        name = attempt.name
        started = time.perf_counter()
        try:
            if location is None:
                location = await asyncio.to_thread(self._source.resolve, attempt.uri)
            # setdefault: the name may have been unloaded while this start-up load queued.
            record = self._records.setdefault(name, _Record(current=attempt))
            existing = record.versions.get(location.version)
            if existing is not None and existing.state is ModelState.READY:
                _log.info("model %s version %s already loaded", name, location.version)
                if current:
                    record.current = existing
                self._cache.use(existing)
                return existing
            attempt.version = location.version
            attempt.metrics = self._metrics.bind(name, location.version)
            self._metrics.set_state(name, location.version, ModelState.LOADING)
            schema, predictor, workdir, size = await asyncio.to_thread(self._read, location)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(attempt, exc, time.perf_counter() - started)
        attempt.schema, attempt.predictor, attempt.workdir = schema, predictor, workdir
        attempt.size_bytes = size
        attempt.pinned_uri = location.artifact_uri or location.uri
        attempt.state = ModelState.READY
        record = self._records.setdefault(name, _Record(current=attempt))
        replaced = record.versions.get(location.version)
        if replaced is not None:
            self._cache.forget(replaced)
        record.versions[location.version] = attempt
        if current or record.current.state is not ModelState.READY:
            record.current = attempt
        self._failures.pop(name, None)
        elapsed = time.perf_counter() - started
        self._metrics.set_state(name, location.version, ModelState.READY)
        self._metrics.forget(name, UNRESOLVED)  # an earlier attempt that never resolved
        self._metrics.loaded(name, location.version, elapsed, ok=True)
        _log.info(
            "loaded model %s version %s (%s, %d bytes) in %.2fs",
            name,
            location.version,
            predictor.platform,
            size,
            elapsed,
            extra={"model": name, "version": location.version, "load_seconds": elapsed},
        )
        self._cache.use(attempt)
        self._cache.enforce(keep=attempt)
        return attempt

    def _failed(self, attempt: ServedModel, exc: Exception, elapsed: float) -> ServedModel:
        attempt.state = ModelState.FAILED
        attempt.reason = _reason(exc)
        attempt.failed_at = self._clock()
        self._failures[attempt.name] = self._failures.get(attempt.name, 0) + 1
        version = attempt.version or UNRESOLVED
        record = self._records.get(attempt.name)
        if record is not None and attempt.version is not None:
            replaced = record.versions.get(attempt.version)
            if replaced is not None and replaced is not attempt:
                self._cache.forget(replaced)
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

    def _read(self, location: ModelLocation) -> tuple[InputSchema, Predictor, str | None, int]:
        """Fetch, measure and deserialize a model (blocking, in a worker thread)."""
        from mlflow.models import Model

        workdir = None if location.local_path else tempfile.mkdtemp(prefix="orchard-model-")
        try:
            path = self._source.fetch(location, workdir or "")
            size = self._measure(path)
            mlmodel = Model.load(path)
            schema = input_schema(mlmodel.signature, mlmodel.metadata)
            loader = choose_loader(self._loaders, mlmodel.flavors)
            return schema, loader.load(path, mlmodel, schema), workdir, size
        except BaseException:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
