"""A finished run's candidate through the quality gate: judged, tagged, made the challenger
when it passes, and rolled out when the run asks for it (``auto_rollout``).

A registry or controller outage leaves the run unjudged (``gate_verdict`` null): the next tick
judges it again, which gives the same verdict (the bootstrap's seed is fixed) and repeats only
idempotent registry calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from orchard_core.errors import NotFound, OrchardError, ServiceUnavailable
from orchard_core.tracing import MODEL_ATTRIBUTE, MODEL_VERSION_ATTRIBUTE
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import CHALLENGER, CHAMPION
from orchard_retraining.runs.gate_step import GateJudgment, judge_candidate, record_judgment
from orchard_retraining.runs.protocols import RolloutStarter, RunRegistry
from orchard_retraining.runs.store import PipelineRunStore, run_meta
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.tables import PipelineRunRecord

__all__ = ["CandidateGate"]

_log = logging.getLogger("orchard.retraining.runs")
Note = Callable[[PipelineRunRecord, Mapping[str, Any]], None]


class CandidateGate:
    """Judges succeeded runs' candidates and records the outcome on the run."""

    def __init__(
        self,
        store: PipelineRunStore,
        registry: RunRegistry,
        settings: RetrainingSettings,
        metrics: RetrainingMetrics,
        note: Note,
        starter: RolloutStarter | None = None,
        *,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._note = note
        self.starter = starter
        self._tracer = tracer if tracer is not None else trace.NoOpTracer()

    async def judge(self, record: PipelineRunRecord) -> None:
        """Judge the run's candidate, unless MLflow or the controller is unavailable."""
        model, version = record.model, str(record.candidate_version)
        holdout = (record.result or {}).get("holdout")
        try:
            judgment = await asyncio.to_thread(
                judge_candidate,
                self._registry,
                str(record.mlflow_run_id),
                self._settings.gate,
                holdout if isinstance(holdout, Mapping) else None,
            )
            await asyncio.to_thread(record_judgment, self._registry, model, version, judgment)
        except ServiceUnavailable as exc:
            self._metrics.registry_errors.labels("gate").inc()
            _log.warning("pipeline run %s: gate deferred: %s", record.id, exc)
            return
        except NotFound as exc:  # the version or run was deleted meanwhile
            judgment = GateJudgment("inconclusive", {"reason": str(exc)})
        details = dict(judgment.details)
        rollout_id = None
        champion = False
        if judgment.promotes and self._auto_rollout(record):
            try:
                # The first version has no champion to canary against: it becomes the champion.
                champion = judgment.verdict == "skipped" and await asyncio.to_thread(
                    self._crown_first_version, model, version
                )
                if not champion:
                    rollout_id = await self._start_rollout(model, version)
            except ServiceUnavailable as exc:
                _log.warning("pipeline run %s: rollout deferred: %s", record.id, exc)
                return
            except OrchardError as exc:  # e.g. a rollout of the model already in progress
                details["rollout_error"] = exc.message
        if champion:
            details["champion"] = "the model's first version: made champion, nothing to compare"
        await asyncio.to_thread(
            self._store.update,
            record.id,
            gate_verdict=judgment.verdict,
            gate=details,
            rollout_id=rollout_id,
        )
        self._metrics.gate_decisions.labels(model, judgment.verdict).inc()
        led: dict[str, Any] = {"gate": judgment.verdict}
        if rollout_id is not None:
            led["rollout_id"] = rollout_id
        elif champion:
            led["champion"] = version
        else:  # nothing ships: a later trigger may retrain sooner (see TriggerIntake)
            led["ended_at"] = time.time()
        self._note(record, led)

    def _crown_first_version(self, model: str, version: str) -> bool:
        """Make ``version`` the champion if the model still has none (else False: a champion
        appeared since the run began, and the version is rolled out against it)."""
        if self._registry.alias_version(model, CHAMPION) is not None:
            return False
        self._registry.set_alias(model, CHAMPION, version)
        self._registry.remove_alias(model, CHALLENGER)
        _log.info("%s version %s is the model's first: it is now the champion", model, version)
        return True

    def _auto_rollout(self, record: PipelineRunRecord) -> bool:
        chosen = run_meta(record)["auto_rollout"]
        return self._settings.auto_rollout if chosen is None else bool(chosen)

    async def _start_rollout(self, model: str, version: str) -> int:
        if self.starter is None:
            raise OrchardError("not rolled out: this service has no rollout controller")
        spec = {"model": model, "candidate_version": version}
        attributes = {MODEL_ATTRIBUTE: model, MODEL_VERSION_ATTRIBUTE: version}
        with self._tracer.start_as_current_span("rollout start", attributes=attributes) as span:
            rollout, _ = await self.starter.start(spec, actor="retraining")
            span.set_attribute("orchard.rollout_id", rollout.id)
        return rollout.id
