"""The loaded models' budget: least-recently-used order, eviction, and size estimates.

Eviction: READY versions are kept in least-recently-used order (a load or a request uses a
version). When a load takes the repository over its model count or memory budget, the least
recently used versions are evicted until it fits, skipping the version just loaded and every
version with requests in flight; if those keep it over budget, eviction resumes as their
requests finish. Loading versions are not in the order, so they are never evicted. An
evicted version stays listed as EVICTED and loads again on its next request.

A model's size is the bytes of its model directory (``folder_bytes``), measured once at
load. Not the RSS delta around the load: loads of different names run concurrently in worker
threads while requests allocate on the loop, so a delta would charge one model for another's
memory, and allocators seldom return freed memory, so deltas do not add up as models come
and go. File bytes are deterministic, cost a ``stat`` per file, and for the flavors served
here (pickled estimators, torch weights) follow the in-memory size within a small factor.
The budget therefore bounds model weights, not the interpreter; the process RSS is exported
beside the estimate (``orchard_inference_resident_memory_bytes``) to calibrate it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

from orchard_inference.metrics import UNRESOLVED, InferenceMetrics
from orchard_inference.model import ModelState, ServedModel

__all__ = ["LoadedModels", "ModelBudget", "folder_bytes"]

_log = logging.getLogger("orchard.inference.repository")


@dataclass(frozen=True, slots=True)
class ModelBudget:
    """How much the loaded models may hold: a count of versions and estimated bytes."""

    max_models: int | None = None
    memory_bytes: int | None = None


def folder_bytes(path: str) -> int:
    """The bytes of every file under ``path`` (a model's size estimate; see the module doc)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking
                total += os.path.getsize(os.path.join(root, name))
    return total


class LoadedModels:
    """The READY versions in memory, least recently used first, held to a ``ModelBudget``."""

    def __init__(self, budget: ModelBudget, metrics: InferenceMetrics) -> None:
        self._budget = budget
        self._metrics = metrics
        self._lru: OrderedDict[ServedModel, None] = OrderedDict()
        self._loaded_bytes = 0
        self.evict_pending = False
        """True while the budget is exceeded by versions with requests in flight."""

    def in_memory(self) -> list[ServedModel]:
        """The versions in memory, least recently used first."""
        return list(self._lru)

    def touch(self, served: ServedModel) -> None:
        """A request used ``served``: it becomes the most recently used (if in memory)."""
        if served in self._lru:
            self._lru.move_to_end(served)

    def use(self, served: ServedModel) -> None:
        """Make ``served`` the most recently used version in memory."""
        if served not in self._lru:
            self._lru[served] = None
            self._loaded_bytes += served.size_bytes
        else:
            self._lru.move_to_end(served)

    def forget(self, served: ServedModel) -> None:
        """``served`` left memory (unloaded or replaced)."""
        if served in self._lru:
            del self._lru[served]
            self._loaded_bytes -= served.size_bytes

    def clear(self) -> None:
        """Forget every version (the repository released them all)."""
        self._lru.clear()
        self._loaded_bytes = 0

    def report(self) -> None:
        """Export the count and estimated bytes of the versions in memory."""
        self._metrics.models(len(self._lru), self._loaded_bytes)

    def _over_budget(self) -> bool:
        budget = self._budget
        return (budget.max_models is not None and len(self._lru) > budget.max_models) or (
            budget.memory_bytes is not None and self._loaded_bytes > budget.memory_bytes
        )

    def enforce(self, keep: ServedModel | None = None) -> None:
        """Evict least recently used versions until the budget holds (or nothing may go).

        ``keep`` (by default the most recently used version) is never evicted: when requests
        in flight hold the repository over budget, the request that finishes first must not
        evict the model it just used while older ones wait for theirs.
        """
        if keep is None and self._lru:
            keep = next(reversed(self._lru))
        if self._over_budget():
            for victim in list(self._lru):
                if not self._over_budget():
                    break
                if victim is not keep and not victim.in_flight:
                    self._evict(victim)
        self.evict_pending = self._over_budget()
        if self.evict_pending:
            _log.warning(
                "over the model budget (%d models, %d bytes) while the rest are in use",
                len(self._lru),
                self._loaded_bytes,
            )
        self.report()

    def _evict(self, victim: ServedModel) -> None:
        self.forget(victim)
        victim.release()
        victim.state = ModelState.EVICTED
        version = victim.version or UNRESOLVED
        self._metrics.set_state(victim.name, version, ModelState.EVICTED)
        self._metrics.evicted(victim.name)
        _log.info(
            "evicted model %s version %s (%d bytes), least recently used",
            victim.name,
            version,
            victim.size_bytes,
            extra={"model": victim.name, "version": version},
        )
