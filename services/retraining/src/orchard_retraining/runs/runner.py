"""The pipeline runner: starts pending runs, follows running ones, judges what they made.

One ``tick`` does everything due (the background loop calls it every
``controller_interval_s``; tests call it directly): poll running runs (progress, timeout,
success or failure), judge succeeded runs' candidates with the quality gate, retry clean-ups
MLflow refused, then start pending runs up to ``max_concurrent_runs``, oldest first. A run
that fails, times out or is cancelled leaves no registered version behind: every version
tagged with its id is deleted. A run left ``running`` by a previous process of the service
is failed (the local backend does not know its handle) and cleaned up on the first tick.

Tracing: each stage is a span of the run's trace: ``pipeline_run submit`` (a child of the
request or trigger that asked for the run), ``pipeline_run start`` (whose W3C context the
training step gets as ``TRACEPARENT`` and continues), ``pipeline_run gate`` and, under it,
``rollout start``. Stages of one run are tied together by the submit span's context, kept in
memory: after a restart of the service a run's remaining stages start a new trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import trace

from orchard_core.errors import Conflict, InvalidInput, ServiceUnavailable
from orchard_core.tracing import MODEL_ATTRIBUTE, MODEL_VERSION_ATTRIBUTE, traceparent_env
from orchard_retraining.k8s.errors import RunNotFound
from orchard_retraining.k8s.protocols import PipelineBackend, RunState, RunStatus
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.runs.judging import CandidateGate
from orchard_retraining.runs.local import last_json_object
from orchard_retraining.runs.protocols import RolloutStarter, RunRegistry, TriggerLedger
from orchard_retraining.runs.step import last_progress, step_arguments
from orchard_retraining.runs.store import CLEANUP_PENDING, FINISHED, PipelineRunStore
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.tables import PipelineRunRecord, TriggerRecord

__all__ = ["RUN_ID_TAG", "PipelineRunner"]

_log = logging.getLogger("orchard.retraining.runs")
RUN_ID_TAG: Final = "orchard.pipeline_run_id"
_TAIL_LINES: Final = 20
_ERROR_CHARS: Final = 4000
_RUN_ATTRIBUTE: Final = "orchard.pipeline_run_id"
# Runs whose trace is remembered between stages; the oldest are forgotten past this.
_MAX_TRACED_RUNS: Final = 1024


class PipelineRunner:
    """Pipeline runs from request to judged candidate (and automatic rollout)."""

    def __init__(
        self,
        store: PipelineRunStore,
        backend: PipelineBackend,
        registry: RunRegistry,
        settings: RetrainingSettings,
        metrics: RetrainingMetrics,
        *,
        backend_name: str | None = None,
        starter: RolloutStarter | None = None,
        ledger: TriggerLedger | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """``tracer``: where the stages' spans go (none: not traced)."""
        self.store = store
        self.backend = backend
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._backend_name = backend_name or settings.pipeline_backend
        self._ledger = ledger
        self._tracer = tracer if tracer is not None else trace.NoOpTracer()
        self._traces: OrderedDict[int, trace.SpanContext] = OrderedDict()
        self._gate = CandidateGate(
            store, registry, settings, metrics, self._note, starter, tracer=self._tracer
        )
        self._timeout_s = settings.pipeline_timeout_s
        self._lock = asyncio.Lock()
        self._gauged: set[str] = set()

    @property
    def starter(self) -> RolloutStarter | None:
        """Who starts automatic rollouts (``None``: candidates only become challengers)."""
        return self._gate.starter

    @starter.setter
    def starter(self, starter: RolloutStarter | None) -> None:
        self._gate.starter = starter

    def submit(
        self,
        model: str,
        *,
        trigger_id: int | None = None,
        options: Mapping[str, Any] | None = None,
        auto_rollout: bool | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> PipelineRunRecord:
        """Record a pending run of ``model``'s training step (started by the next tick).

        Raises:
            InvalidInput: an empty model name or an option the step does not take.
        """
        if not model or len(model) > 200:
            raise InvalidInput("'model' must be a non-empty string of at most 200 characters")
        with self._tracer.start_as_current_span(
            "pipeline_run submit", attributes={MODEL_ATTRIBUTE: model}
        ) as span:
            record = self.store.create(
                model,
                backend=self._backend_name,
                trigger_id=trigger_id,
                options=options,
                auto_rollout=auto_rollout,
                actor=actor,
                reason=reason,
            )
            span.set_attribute(_RUN_ATTRIBUTE, record.id)
            self._remember(record.id, span)
        self._note(record, {"pipeline_run_id": record.id})
        return record

    def submit_for_trigger(self, trigger: TriggerRecord) -> dict[str, Any]:
        """An accepted trigger's run; returns what the trigger led to."""
        run = self.submit(trigger.model, trigger_id=trigger.id, actor=f"trigger:{trigger.source}")
        return {"pipeline_run_id": run.id}

    def logs(self, run_id: int, tail_lines: int | None = None) -> str:
        """The run's log so far (empty before it starts)."""
        handle = self.store.get(run_id).handle
        return "" if handle is None else self.backend.logs(handle, tail_lines=tail_lines)

    async def cancel(self, run_id: int, actor: str | None = None) -> PipelineRunRecord:
        """Stop a pending or running run; its registered version, if any, is deleted.

        Raises:
            NotFound: no such run.
            Conflict: the run has already finished.
        """
        async with self._lock:
            record = await asyncio.to_thread(self.store.get, run_id)
            if record.status in FINISHED:
                raise Conflict(f"pipeline run {run_id} has already {record.status}")
            if record.handle is not None:
                await asyncio.to_thread(self.backend.cancel, record.handle)
            by = f"cancelled by {actor}" if actor else "cancelled"
            return await self._finish(record, "cancelled", by, cleanup=record.handle is not None)

    def close(self) -> None:
        """Stop the local runs still going (the service is shutting down); Jobs carry on."""
        closer = getattr(self.backend, "close", None)
        if callable(closer):
            closer()

    async def run(self) -> None:
        """Tick every ``controller_interval_s`` until cancelled (the first tick at once)."""
        while True:
            try:
                await self.tick()
            except Exception:
                _log.exception("pipeline runner tick failed; trying again")
            await asyncio.sleep(self._settings.controller_interval_s)

    async def tick(self) -> None:
        """Do everything due now (see the module docs)."""
        async with self._lock:
            for record in await asyncio.to_thread(self.store.with_status, "running"):
                await self._poll(record)
            for record in await asyncio.to_thread(self.store.awaiting_gate):
                await self._judge(record)
            for record in await asyncio.to_thread(self.store.awaiting_cleanup):
                await self._cleanup(record)
            await self._start_pending()
            await asyncio.to_thread(self._gauge)

    async def _start_pending(self) -> None:
        running = len(await asyncio.to_thread(self.store.with_status, "running"))
        room = self._settings.max_concurrent_runs - running
        if room <= 0:
            return
        for record in await asyncio.to_thread(self.store.with_status, "pending", room):
            try:
                with self._stage("pipeline_run start", record):
                    handle = await asyncio.to_thread(
                        self.backend.submit,
                        model=record.model,
                        run_id=str(record.id),
                        trigger_id="" if record.trigger_id is None else str(record.trigger_id),
                        args=step_arguments(record, self._settings),
                        env=traceparent_env(),  # the step continues the run's trace
                    )
            except Exception as exc:
                _log.exception("pipeline run %s could not start", record.id)
                await self._finish(record, "failed", f"could not start: {exc}", cleanup=False)
                continue
            await asyncio.to_thread(
                self.store.update,
                record.id,
                only_if=("pending",),
                status="running",
                handle=handle,
                stage="starting",
                started_at=time.time(),
            )

    async def _poll(self, record: PipelineRunRecord) -> None:
        handle = str(record.handle)
        try:
            status = await asyncio.to_thread(self.backend.status, handle)
        except RunNotFound as exc:
            status = RunStatus(RunState.FAILED, f"the run is gone: {exc}")
        except Exception:
            _log.exception("could not read the status of pipeline run %s", record.id)
            return
        if status.state is RunState.SUCCEEDED:
            await self._succeeded(record, handle)
        elif status.state is RunState.FAILED:
            await self._finish(record, "failed", await self._with_log(status.detail, handle))
        elif time.time() - (record.started_at or record.created_at) > self._timeout_s:
            await asyncio.to_thread(self.backend.cancel, handle)
            why = f"timed out after {self._timeout_s:g} s"
            await self._finish(record, "failed", await self._with_log(why, handle))
        else:
            await self._progress(record, handle)

    async def _progress(self, record: PipelineRunRecord, handle: str) -> None:
        text = await asyncio.to_thread(self.backend.logs, handle, tail_lines=200)
        found = last_progress(text)
        if found is not None and found != (record.progress, record.stage):
            fraction, stage = found
            await asyncio.to_thread(
                self.store.update, record.id, only_if=("running",), progress=fraction, stage=stage
            )

    async def _with_log(self, detail: str | None, handle: str) -> str:
        head = (detail or "failed")[:1000]
        try:
            lines = await asyncio.to_thread(self.backend.logs, handle, tail_lines=_TAIL_LINES)
        except Exception as exc:  # the log is a courtesy; the failure is what matters
            lines = f"(log unavailable: {exc})"
        if not lines.strip():
            return head
        head += "\n--- last lines of the log ---\n"
        return head + lines[-(_ERROR_CHARS - len(head)) :]

    async def _succeeded(self, record: PipelineRunRecord, handle: str) -> None:
        result = await asyncio.to_thread(self._result, handle)
        version, mlflow_run = (result or {}).get("version"), (result or {}).get("run_id")
        if result is None or not isinstance(version, str | int) or not isinstance(mlflow_run, str):
            why = "the training step succeeded but printed no result (version, run_id) as JSON"
            await self._finish(record, "failed", await self._with_log(why, handle))
            return
        updated = await asyncio.to_thread(
            self.store.update,
            record.id,
            only_if=("running",),
            candidate_version=str(version),
            mlflow_run_id=mlflow_run,
            result=result,
            progress=1.0,
        )
        if updated is not None:
            finished = await self._finish(updated, "succeeded", None, cleanup=False)
            self._note(finished, {"candidate_version": str(version)})
            await self._judge(finished)

    async def _judge(self, record: PipelineRunRecord) -> None:
        with self._stage("pipeline_run gate", record) as span:
            span.set_attribute(MODEL_VERSION_ATTRIBUTE, str(record.candidate_version))
            await self._gate.judge(record)
            judged = await asyncio.to_thread(self.store.get, record.id)
            if judged.gate_verdict is not None:  # else deferred: judged again next tick
                span.set_attribute("orchard.gate.verdict", judged.gate_verdict)
                self._traces.pop(record.id, None)

    @contextmanager
    def _stage(self, name: str, record: PipelineRunRecord) -> Iterator[trace.Span]:
        """A span of the run's trace (a new trace when the run's is not known)."""
        known = self._traces.get(record.id)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(known)) if known else None
        attributes: dict[str, str | int] = {
            MODEL_ATTRIBUTE: record.model,
            _RUN_ATTRIBUTE: record.id,
        }
        with self._tracer.start_as_current_span(
            name, context=parent, attributes=attributes
        ) as span:
            if known is None:
                self._remember(record.id, span)
            yield span

    def _remember(self, run_id: int, span: trace.Span) -> None:
        context = span.get_span_context()
        if not context.is_valid:
            return
        self._traces[run_id] = context
        while len(self._traces) > _MAX_TRACED_RUNS:
            self._traces.popitem(last=False)

    def _result(self, handle: str) -> dict[str, Any] | None:
        reader = getattr(self.backend, "result", None)
        if callable(reader):
            found: dict[str, Any] | None = reader(handle)
            return found
        # Kubernetes: the Job's log merges stdout and stderr; the result is its last JSON line.
        return last_json_object(self.backend.logs(handle, tail_lines=50))

    async def _finish(
        self, record: PipelineRunRecord, status: str, error: str | None, *, cleanup: bool = True
    ) -> PipelineRunRecord:
        now = time.time()
        updated = await asyncio.to_thread(
            self.store.update,
            record.id,
            only_if=("pending", "running"),
            status=status,
            error=error,
            finished_at=now,
        )
        if updated is None:  # finished by someone else meanwhile
            return await asyncio.to_thread(self.store.get, record.id)
        self._metrics.pipeline_runs.labels(record.model, status).inc()
        if status != "succeeded":  # no gate follows: the run's trace is complete
            self._traces.pop(record.id, None)
        if updated.started_at is not None:
            duration = max(0.0, now - updated.started_at)
            self._metrics.pipeline_run_duration.labels(record.model).observe(duration)
        led: dict[str, Any] = {"pipeline_status": status}
        if status != "succeeded":  # nothing ships: a later trigger may retrain sooner
            led["ended_at"] = now
        self._note(updated, led)
        if cleanup:
            await self._cleanup(updated)
        return await asyncio.to_thread(self.store.get, record.id)

    async def _cleanup(self, record: PipelineRunRecord) -> None:
        """Delete every version the run registered (a killed step cannot do it itself)."""
        try:
            versions = await asyncio.to_thread(
                self._registry.versions_tagged, record.model, RUN_ID_TAG, str(record.id)
            )
            for version in versions:
                await asyncio.to_thread(self._registry.delete_version, record.model, version)
        except ServiceUnavailable as exc:
            self._metrics.registry_errors.labels("delete_version").inc()
            _log.warning("pipeline run %s: clean-up deferred: %s", record.id, exc)
            if record.stage != CLEANUP_PENDING:
                await asyncio.to_thread(self.store.update, record.id, stage=CLEANUP_PENDING)
            return
        changes: dict[str, Any] = {}
        if record.stage == CLEANUP_PENDING:
            changes["stage"] = "cleaned up"
        if versions:
            deleted = ", ".join(versions)
            note = f"\n(deleted the version(s) it had registered: {deleted})"
            changes["error"] = (record.error or "")[: _ERROR_CHARS - len(note)] + note
        if changes:
            await asyncio.to_thread(self.store.update, record.id, **changes)

    def _note(self, record: PipelineRunRecord, changes: Mapping[str, Any]) -> None:
        if self._ledger is None or record.trigger_id is None:
            return
        try:
            self._ledger.note(record.trigger_id, changes)
        except Exception:  # the audit trail lags; the run itself goes on
            _log.exception("could not update trigger %s", record.trigger_id)

    def _gauge(self) -> None:
        active = self.store.active_by_model()
        for model in self._gauged | set(active):
            self._metrics.pipeline_runs_running.labels(model).set(active.get(model, 0))
        self._gauged |= set(active)
