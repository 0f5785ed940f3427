"""Carrying out what transitions left pending: registry aliases, then retiring losers.

Order matters within a model: a rollback's ``remove_alias challenger`` must not overtake the
start's ``set_alias challenger`` that is still waiting for MLflow, so a model's alias actions
run in the order they were decided (rollouts oldest first) and stop at the first failure;
the rest wait for the next tick. A ``retire`` waits out its grace (gateways poll the route
table about once a second and must stop sending traffic first) and never blocks aliases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from orchard_core.errors import NotFound
from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import ModelRegistry, RegistryUnavailable
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.rollouts import RolloutSpec

__all__ = ["PendingActions"]

_log = logging.getLogger("orchard.retraining.controller")

_Outcome = Literal["done", "failed", "later"]


class PendingActions:
    """Runs the stored pending actions of every rollout (one pass at a time)."""

    def __init__(
        self,
        store: RolloutStore,
        *,
        registry: ModelRegistry | None,
        traffic: TrafficBackend | None,
        metrics: RetrainingMetrics,
        retire_grace_s: float,
        clock: Callable[[], float],
        forget_url: Callable[[str, str], None],
    ) -> None:
        self._store = store
        self._registry = registry
        self._traffic = traffic
        self._metrics = metrics
        self._grace_s = retire_grace_s
        self._clock = clock
        self._forget_url = forget_url
        self._lock = asyncio.Lock()

    async def carry_out(self, model: str | None = None) -> None:
        """One pass over the pending actions (of ``model``, or of every model)."""
        async with self._lock:
            records = await asyncio.to_thread(self._store.with_pending, model)
            blocked: set[str] = set()
            for record in records:
                done: list[dict[str, Any]] = []
                for action in list(record.pending_actions):
                    if action.get("type") == "retire":
                        outcome = await self._retire(action)
                    elif record.model in blocked:
                        continue
                    else:
                        outcome = await self._alias(action)
                        if outcome == "failed":
                            blocked.add(record.model)
                    if outcome == "done":
                        done.append(action)
                await asyncio.to_thread(self._store.drop_pending, record.id, done)

    async def _alias(self, action: dict[str, Any]) -> _Outcome:
        if self._registry is None:
            return "done"  # no registry configured: no alias to keep in step
        kind, model, name = action.get("type"), str(action["model"]), str(action["name"])
        try:
            if kind == "set_alias":
                version = str(action["version"])
                await asyncio.to_thread(self._registry.set_alias, model, name, version)
            elif kind == "remove_alias":
                await asyncio.to_thread(self._registry.remove_alias, model, name)
            else:
                _log.error("dropping an unknown pending action: %s", action)
                return "done"
        except NotFound as exc:
            # Cannot succeed later either (the version was deleted): keep the queue moving.
            self._metrics.registry_errors.labels(str(kind)).inc()
            _log.error("dropping %s of %s@%s: %s", kind, model, name, exc)
            return "done"
        except RegistryUnavailable as exc:
            self._metrics.registry_errors.labels(str(kind)).inc()
            _log.warning("%s of %s@%s stays pending: %s", kind, model, name, exc)
            return "failed"
        _log.info("registry: %s %s@%s %s", kind, model, name, action.get("version", ""))
        return "done"

    async def _retire(self, action: dict[str, Any]) -> _Outcome:
        model, version = str(action["model"]), str(action["version"])
        if self._clock() < float(action.get("decided_at", 0.0)) + self._grace_s:
            return "later"
        if self._traffic is None or await asyncio.to_thread(self._in_use, model, version):
            return "done"
        try:
            await asyncio.to_thread(self._traffic.retire, model, version)
        except Exception as exc:
            _log.warning("retiring %s version %s failed; will retry: %s", model, version, exc)
            return "failed"
        self._forget_url(model, version)
        _log.info("retired %s version %s from the traffic backend", model, version)
        return "done"

    def _in_use(self, model: str, version: str) -> bool:
        """Whether the version is the champion now or part of an unfinished rollout."""
        if self._store.champions().get(model) == version:
            return True
        for record in self._store.unfinished():
            spec = RolloutSpec.from_dict(record.spec)
            if spec.model == model and version in (spec.champion_version, spec.candidate_version):
                return True
        return False
