"""The rollout controller: owns the clock and the I/O around the pure state machine.

Each event goes through :class:`RolloutStore` (one transaction: the new state, the alias and
retire actions it leaves pending, the champion when it ends), then its actions are carried
out: ``SetRoutes`` needs nothing (the route table is computed from the database),
``AskEvaluation`` is answered by evaluation and fed back as the next event, and the pending
actions are tried against MLflow and the traffic backend. Everything lives in the database,
so a restarted service carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchard_core.errors import Conflict, InvalidInput, ServiceUnavailable
from orchard_retraining.controller.observe import observe_state, observe_transition
from orchard_retraining.controller.pending import PendingActions
from orchard_retraining.evaluation_client import EvaluationClient
from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import CHAMPION, ModelRegistry, RegistryUnavailable
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.rollouts import (
    AskEvaluation,
    RolloutEvent,
    RolloutSpec,
    RolloutState,
    SetRoutes,
    Tick,
    Transition,
)
from orchard_retraining.route_table import RenderedRouteTable, build_route_table, render
from orchard_retraining.tables import RolloutRecord

__all__ = ["RolloutController"]

_log = logging.getLogger("orchard.retraining.controller")


class RolloutController:
    """Starts rollouts, moves them along every ``interval_s``, and serves the route table.

    Args:
        store: where rollouts and champions are kept.
        evaluation: asks evaluation for judgments.
        metrics: the service's metrics.
        registry: MLflow's registry (``None``: no aliases are kept, champions only known
            from this database).
        traffic: serves versions (``None``: versions are served by someone else).
        target_url: the one URL that serves every version (the local runtime); ``None``:
            each version's own URL from ``traffic.url``.
        models: models whose champion is read from the registry every ``champion_refresh_s``.
        rollout_defaults: settings every started rollout starts from.
        retire_grace_s: how long a finished rollout's losing version keeps being served, so
            gateways (which poll the route table) stop sending it traffic first.
        redeploy_backoff_s: the least time between two attempts to serve the same version.
        clock: Unix time (tests pass their own).
    """

    def __init__(
        self,
        store: RolloutStore,
        *,
        evaluation: EvaluationClient,
        metrics: RetrainingMetrics,
        registry: ModelRegistry | None = None,
        traffic: TrafficBackend | None = None,
        target_url: str | None = None,
        models: Sequence[str] = (),
        rollout_defaults: Mapping[str, Any] | None = None,
        interval_s: float = 1.0,
        champion_refresh_s: float = 30.0,
        retire_grace_s: float = 5.0,
        redeploy_backoff_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self._evaluation = evaluation
        self._metrics = metrics
        self._registry = registry
        self._traffic = traffic
        self._target_url = target_url.rstrip("/") if target_url else None
        self._models = tuple(models)
        self._defaults = dict(rollout_defaults or {})
        self._refresh_s = champion_refresh_s
        self._backoff_s = redeploy_backoff_s
        self._clock = clock
        self._urls: dict[tuple[str, str], str] = {}
        self._deploys: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._deploy_tried: dict[tuple[str, str], float] = {}
        self._refreshed_at: float | None = None
        self._registry_down = False
        self._pending = PendingActions(
            store,
            registry=registry,
            traffic=traffic,
            metrics=metrics,
            retire_grace_s=retire_grace_s,
            clock=clock,
            forget_url=self._forget_url,
        )

    # -- commands ---------------------------------------------------------------------------

    async def start(
        self, spec_data: Mapping[str, Any], actor: str | None = None
    ) -> tuple[RolloutRecord, Transition]:
        """Start a rollout: defaults overlaid by ``spec_data``, the candidate served first.

        Raises:
            InvalidInput: a bad spec, or no champion given and none known.
            Conflict: the model already has an unfinished rollout.
            ServiceUnavailable: the candidate cannot be served (nothing was started), or the
                registry is down while the champion had to be read from it.
        """
        data = {**self._defaults, **spec_data}
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("not a valid rollout: 'model' must be a non-empty string")
        if data.get("champion_version") is None:
            data["champion_version"] = await self._champion_for_start(model)
        try:
            spec = RolloutSpec.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a valid rollout: {exc}") from None
        running = await asyncio.to_thread(self.store.running, model)
        if running is not None:
            raise Conflict(f"{model} already has rollout {running} in progress")
        await self._serve(spec.model, spec.candidate_version, required=True)
        record, transition = await asyncio.to_thread(
            self.store.start, spec.to_dict(), actor, self._clock()
        )
        _log.info("rollout %d of %s version %s started", record.id, model, spec.candidate_version)
        await self._execute(record, transition)
        return await asyncio.to_thread(self.store.get, record.id), transition

    async def apply(self, rollout_id: int, event: RolloutEvent) -> tuple[RolloutRecord, Transition]:
        """Apply ``event`` (a person's promote or abort) and carry out its actions.

        Raises:
            NotFound: no such rollout.
            Conflict: the event does not apply now.
        """
        record, transition = await asyncio.to_thread(
            self.store.apply, rollout_id, event, self._clock()
        )
        await self._execute(record, transition)
        return await asyncio.to_thread(self.store.get, rollout_id), transition

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled; a failing tick is logged, not fatal."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("rollout controller tick failed")
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> None:
        """Move every unfinished rollout along, retry pending actions, refresh champions,
        and serve again any routed version the traffic backend lost."""
        for record in await asyncio.to_thread(self.store.unfinished):
            try:
                moved, transition = await asyncio.to_thread(
                    self.store.apply, record.id, Tick(), self._clock()
                )
            except Conflict:
                continue  # finished by a person in the meantime
            await self._execute(moved, transition)
        await self._pending.carry_out()
        await self._refresh_champions()
        await self._check_served()

    async def drain(self) -> None:
        """Wait for the deployments started in the background (tests, shutdown)."""
        while self._deploys:
            await asyncio.gather(*self._deploys.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop background deployments."""
        for task in self._deploys.values():
            task.cancel()
        await asyncio.gather(*self._deploys.values(), return_exceptions=True)

    # -- the route table --------------------------------------------------------------------

    def route_table(self) -> RenderedRouteTable:
        """The route table now, rendered (blocking: reads the database)."""
        champions = self.store.champions()
        rollouts = [
            (RolloutSpec.from_dict(r.spec), RolloutState.from_dict(r.state))
            for r in self.store.unfinished()
        ]
        return render(build_route_table(champions, rollouts, self.target_url))

    def target_url(self, model: str, version: str) -> str | None:
        """Where ``version`` is served (blocking the first time it is asked, on Kubernetes)."""
        if self._target_url is not None:
            return self._target_url
        known = self._urls.get((model, version))
        if known is not None or self._traffic is None:
            return known
        try:
            url = self._traffic.url(model, version)
        except Exception as exc:
            _log.warning("cannot read the URL of %s version %s: %s", model, version, exc)
            return None
        if url is not None:
            self._urls[(model, version)] = url
        return url

    # -- internals --------------------------------------------------------------------------

    async def _champion_for_start(self, model: str) -> str:
        known = (await asyncio.to_thread(self.store.champions)).get(model)
        if known is None and self._registry is not None:
            known = await asyncio.to_thread(self._registry.alias_version, model, CHAMPION)
        if known is None:
            raise InvalidInput(
                f"{model} has no champion: name champion_version, or give a version of it the "
                "MLflow alias 'champion'"
            )
        return known

    async def _execute(self, record: RolloutRecord, transition: Transition) -> None:
        observe_transition(self._metrics, record.model, transition)
        for decision in transition.decisions:
            _log.info(
                "rollout %d of %s: %s (%s)",
                record.id,
                record.model,
                decision.action,
                decision.reason,
            )
        for action in transition.actions:
            if isinstance(action, SetRoutes):
                _log.info(
                    "rollout %d: routes of %s now %s", record.id, action.model, dict(action.weights)
                )
            elif isinstance(action, AskEvaluation):
                answer = await self._evaluation.ask(action)
                try:
                    judged, after = await asyncio.to_thread(
                        self.store.apply, record.id, answer, self._clock()
                    )
                except Conflict:
                    continue
                await self._execute(judged, after)
        if transition.state.terminal or any(
            not isinstance(a, SetRoutes | AskEvaluation) for a in transition.actions
        ):
            await self._pending.carry_out(record.model)

    async def _serve(self, model: str, version: str, *, required: bool) -> None:
        if self._traffic is None:
            return
        key = (model, version)
        self._deploy_tried[key] = self._clock()
        try:
            url = await asyncio.to_thread(
                self._traffic.deploy, model, version, f"models:/{model}/{version}", "mlflow"
            )
        except Exception as exc:
            if required:
                raise ServiceUnavailable(
                    f"cannot serve {model} version {version}, so no rollout started: {exc}"
                ) from exc
            _log.warning("serving %s version %s again failed: %s", model, version, exc)
            return
        self._urls[key] = url

    async def _check_served(self) -> None:
        """Serve (in the background) the versions the routes need that the backend lacks:
        the rollouts' versions, and with per-version URLs (Kubernetes) every champion."""
        if self._traffic is None:
            return
        wanted: set[tuple[str, str]] = set()
        for record in await asyncio.to_thread(self.store.unfinished):
            spec = RolloutSpec.from_dict(record.spec)
            wanted.update(
                {(spec.model, spec.candidate_version), (spec.model, spec.champion_version)}
            )
        if self._target_url is None:
            # A champion named by alias alone (the first version, one promoted by hand in
            # MLflow, or one whose InferenceService was deleted) has nothing serving it yet.
            champions = await asyncio.to_thread(self.store.champions)
            wanted.update((model, version) for model, version in champions.items())
        now = self._clock()
        for model, version in sorted(wanted):
            key = (model, version)
            if key in self._deploys or now - self._deploy_tried.get(key, -1e18) < self._backoff_s:
                continue
            url = await asyncio.to_thread(self._traffic.url, model, version)
            if url is not None:
                self._urls[key] = url
                continue
            if key in self._deploys:  # a concurrent check got there while we asked
                continue
            _log.warning("%s version %s is not served: serving it", model, version)
            task = asyncio.create_task(self._serve(model, version, required=False))
            self._deploys[key] = task
            task.add_done_callback(functools.partial(self._deployed, key))

    async def _refresh_champions(self) -> None:
        now = self._clock()
        if self._registry is None or (
            self._refreshed_at is not None and now - self._refreshed_at < self._refresh_s
        ):
            return
        self._refreshed_at = now
        for model in self._models:
            try:
                version = await asyncio.to_thread(self._registry.alias_version, model, CHAMPION)
            except RegistryUnavailable as exc:
                self._metrics.registry_errors.labels("read_alias").inc()
                if not self._registry_down:
                    _log.warning("keeping the last known champions: %s", exc)
                self._registry_down = True
                return
            self._registry_down = False
            if version is not None and await asyncio.to_thread(
                self.store.refresh_champion, model, version, now
            ):
                _log.info("champion of %s is now version %s (registry)", model, version)

    def _deployed(self, key: tuple[str, str], _: asyncio.Task[None]) -> None:
        self._deploys.pop(key, None)

    def _forget_url(self, model: str, version: str) -> None:
        self._urls.pop((model, version), None)

    def observe_all(self) -> None:
        """Set the rollout gauges from the database (after a restart)."""
        for record in self.store.unfinished():
            observe_state(self._metrics, record.model, RolloutState.from_dict(record.state))
