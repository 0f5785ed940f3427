"""A pipeline run is one trace: submit, start (whose context the step gets as TRACEPARENT),
and the Kubernetes Job carries the same variable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from orchard_retraining.db import Database
from orchard_retraining.k8s import TrainingJobSettings, training_job
from orchard_retraining.k8s.protocols import RunState, RunStatus
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.runs import PipelineRunner, PipelineRunStore
from orchard_retraining.settings import RetrainingSettings

from .conftest import FakeRegistry


class _RecordingBackend:
    def __init__(self) -> None:
        self.envs: list[dict[str, str]] = []

    def submit(
        self,
        *,
        model: str,
        run_id: str,
        trigger_id: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
    ) -> str:
        self.envs.append(dict(env or {}))
        return f"rec:{run_id}"

    def status(self, handle: str) -> RunStatus:
        return RunStatus(RunState.RUNNING)

    def logs(self, handle: str, *, tail_lines: int | None = None) -> str:
        return ""

    def cancel(self, handle: str) -> None:
        pass


async def test_the_step_continues_the_runs_trace(tmp_path: Path, database: Database) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    backend = _RecordingBackend()
    settings = RetrainingSettings(database_url="sqlite://", runs_dir=tmp_path, log_json=False)
    runner = PipelineRunner(
        PipelineRunStore(database),
        backend,
        FakeRegistry(tmp_path),
        settings,
        RetrainingMetrics(CollectorRegistry()),
        tracer=provider.get_tracer("test"),
    )
    run = runner.submit("credit-risk")
    await runner.tick()
    submit, start = exporter.get_finished_spans()
    assert (submit.name, start.name) == ("pipeline_run submit", "pipeline_run start")
    assert start.context.trace_id == submit.context.trace_id
    assert start.parent is not None
    assert start.parent.span_id == submit.context.span_id
    assert start.attributes is not None
    assert start.attributes["orchard.pipeline_run_id"] == run.id
    (env,) = backend.envs
    trace_hex, span_hex = f"{start.context.trace_id:032x}", f"{start.context.span_id:016x}"
    assert env["TRACEPARENT"].startswith(f"00-{trace_hex}-{span_hex}-")


async def test_without_tracing_the_step_gets_no_traceparent(
    tmp_path: Path, database: Database
) -> None:
    backend = _RecordingBackend()
    settings = RetrainingSettings(database_url="sqlite://", runs_dir=tmp_path, log_json=False)
    runner = PipelineRunner(
        PipelineRunStore(database),
        backend,
        FakeRegistry(tmp_path),
        settings,
        RetrainingMetrics(CollectorRegistry()),
    )
    runner.submit("m")
    await runner.tick()
    assert backend.envs == [{}]


@pytest.mark.parametrize("env", [None, {"TRACEPARENT": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}])
def test_the_job_carries_the_runs_variables(env: dict[str, str] | None) -> None:
    settings = TrainingJobSettings(image="ghcr.io/orchard/pipelines:1.0", env={"A": "1"})
    job = training_job(settings, model="m", run_id="7", trigger_id="", args=[], env=env)
    variables = job["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [v["name"] for v in variables]
    assert names[-1] == ("TRACEPARENT" if env else "A")
    if env:
        assert variables[-1]["value"] == env["TRACEPARENT"]
