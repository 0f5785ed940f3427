"""The runner end to end with real processes (fake_train.py) and a fake registry/starter."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from orchard_core.errors import Conflict
from orchard_retraining.runs import RESTARTED, RUN_ID_TAG, LocalPipelineBackend, step_arguments
from orchard_retraining.settings import RetrainingSettings

from .conftest import FakeRegistry, MakeHarness, fake_command

RUNS = "orchard_retraining_pipeline_runs_total"
GATE = "orchard_retraining_gate_decisions_total"


async def test_a_better_candidate_passes_becomes_challenger_and_is_rolled_out(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--holdout", "better")
    run = h.runner.submit("credit-risk", options={"seed": 3, "n_rows": 200})
    await h.runner.tick()
    assert h.store.get(run.id).status == "running"
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert (done.status, done.progress, done.candidate_version) == ("succeeded", 1.0, "41")
    assert done.mlflow_run_id == "fake-1"
    assert done.result is not None
    assert done.gate_verdict == "passed"
    assert done.gate is not None
    assert done.gate["metrics"][0]["metric"] == "roc_auc"
    assert done.gate["holdout"] == {"rows": 600, "source": "synthetic"}
    assert isinstance(h.registry, FakeRegistry)
    assert h.registry.aliases == {"challenger": "41"}
    assert h.registry.versions["41"]["orchard.gate"] == "passed"
    assert h.starter.started == [
        ({"model": "credit-risk", "candidate_version": "41"}, "retraining")
    ]
    assert done.rollout_id == 101
    assert h.metric(RUNS, model="credit-risk", status="succeeded") == 1
    assert h.metric(GATE, model="credit-risk", verdict="passed") == 1
    logs = h.runner.logs(run.id)
    assert "--seed 3 --n-rows 200" in logs
    assert "--pipeline-run-id 1" in logs


async def test_a_worse_candidate_fails_the_gate_with_its_numbers_and_goes_nowhere(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--holdout", "worse")
    run = h.runner.submit("credit-risk")
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert (done.status, done.gate_verdict, done.rollout_id) == ("succeeded", "failed", None)
    assert done.gate is not None
    metric = done.gate["metrics"][0]
    assert metric["verdict"] == "FAIL"
    assert metric["ci"][1] < -0.01
    assert isinstance(h.registry, FakeRegistry)
    assert h.registry.aliases == {}
    assert h.starter.started == []
    assert h.registry.versions["41"]["orchard.gate"] == "failed"


async def test_the_first_version_skips_the_gate_and_auto_rollout_can_be_declined(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--holdout", "first")
    run = h.runner.submit("digits", auto_rollout=False)
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert done.gate_verdict == "skipped"
    assert done.rollout_id is None
    assert isinstance(h.registry, FakeRegistry)
    assert h.registry.aliases == {"challenger": "41"}
    assert h.starter.started == []


async def test_the_first_version_becomes_the_champion_when_rolled_out(
    make_harness: MakeHarness,
) -> None:
    # Nothing to canary against: a rollout would be refused for want of a champion, and the
    # model would never be served (the first retraining in an empty cluster).
    h = make_harness("--holdout", "first")
    run = h.runner.submit("digits")
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert (done.gate_verdict, done.rollout_id) == ("skipped", None)
    assert done.gate is not None
    assert "first version" in done.gate["champion"]
    assert isinstance(h.registry, FakeRegistry)
    assert h.registry.aliases == {"champion": "41"}
    assert h.starter.started == []


async def test_a_first_version_is_rolled_out_if_a_champion_appeared_meanwhile(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--holdout", "first")
    assert isinstance(h.registry, FakeRegistry)
    h.registry.aliases["champion"] = "7"  # set by hand while the run trained
    run = h.runner.submit("digits")
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert done.rollout_id == 101
    assert h.registry.aliases == {"champion": "7", "challenger": "41"}
    assert h.starter.started == [({"model": "digits", "candidate_version": "41"}, "retraining")]


async def test_a_registry_outage_defers_the_gate_to_a_later_tick(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    registry = FakeRegistry(tmp_path / "artifacts", down=True)
    h = make_harness("--holdout", "better", registry=registry)
    run = h.runner.submit("m")
    done = await h.finished(run.id)
    assert (done.status, done.gate_verdict) == ("succeeded", None)
    registry.down = False
    await h.runner.tick()
    assert h.store.get(run.id).gate_verdict == "passed"


async def test_a_failed_run_keeps_its_error_and_log_and_leaves_no_version(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--mode", "fail")
    run = h.runner.submit("m")
    assert isinstance(h.registry, FakeRegistry)
    h.registry.versions["7"] = {RUN_ID_TAG: str(run.id)}  # registered before it broke
    done = await h.finished(run.id)
    assert done.status == "failed"
    assert done.error is not None
    assert "exited with code 1: ValueError: boom" in done.error
    assert "orchard-progress 0.6 training" in done.error  # the log's tail
    assert "deleted the version(s) it had registered: 7" in done.error
    assert h.registry.deleted == ["7"]
    assert h.metric(RUNS, model="m", status="failed") == 1


async def test_a_step_without_a_result_fails(make_harness: MakeHarness) -> None:
    h = make_harness("--mode", "noresult")
    done = await h.finished(h.runner.submit("m").id)
    assert done.status == "failed"
    assert "printed no result" in (done.error or "")


async def test_a_run_past_its_timeout_is_stopped_and_failed(make_harness: MakeHarness) -> None:
    h = make_harness("--mode", "hang", pipeline_timeout_s=1.0)
    run = h.runner.submit("m")
    running = await h.until(run.id, lambda r: r.stage == "training")
    assert running.progress == pytest.approx(0.6)
    done = await h.finished(run.id, timeout_s=30)
    assert done.status == "failed"
    assert "timed out after 1 s" in (done.error or "")
    assert h.backend.status(f"local:{run.id}").state.finished  # the process is gone


async def test_cancel_stops_a_running_run_and_refuses_a_finished_one(
    make_harness: MakeHarness,
) -> None:
    h = make_harness("--mode", "hang")
    run = h.runner.submit("m")
    await h.until(run.id, lambda r: r.stage == "training")
    cancelled = await h.runner.cancel(run.id, actor="ada")
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by ada")
    assert h.backend.status(f"local:{run.id}").detail == "killed by SIGTERM"
    with pytest.raises(Conflict):
        await h.runner.cancel(run.id)
    pending = h.runner.submit("m")
    assert (await h.runner.cancel(pending.id)).status == "cancelled"
    assert h.metric(RUNS, model="m", status="cancelled") == 2


async def test_runs_wait_for_a_free_slot_oldest_first(make_harness: MakeHarness) -> None:
    h = make_harness("--mode", "hang", max_concurrent_runs=1)
    first, second = h.runner.submit("a"), h.runner.submit("b")
    await h.runner.tick()
    assert [h.store.get(r.id).status for r in (first, second)] == ["running", "pending"]
    assert h.metric("orchard_retraining_pipeline_runs_running", model="b") == 1
    await h.runner.cancel(first.id)
    await h.runner.tick()
    assert h.store.get(second.id).status == "running"
    await h.runner.cancel(second.id)
    await h.runner.tick()
    assert h.metric("orchard_retraining_pipeline_runs_running", model="a") == 0


async def test_a_run_left_running_by_a_previous_process_is_failed_and_cleaned_up(
    make_harness: MakeHarness,
) -> None:
    before = make_harness("--mode", "hang")
    run = before.runner.submit("m")
    await before.until(run.id, lambda r: r.status == "running")
    before.backend.close()  # the old process is gone with its service
    assert isinstance(before.registry, FakeRegistry)
    registry = before.registry
    registry.versions["9"] = {RUN_ID_TAG: str(run.id)}
    after = make_harness("--mode", "hang", registry=registry)  # a new backend: knows no handle
    await after.runner.tick()
    done = after.store.get(run.id)
    assert done.status == "failed"
    assert (done.error or "").startswith(RESTARTED)
    assert registry.deleted == ["9"]


async def test_a_cleanup_mlflow_refuses_is_retried(make_harness: MakeHarness) -> None:
    h = make_harness("--mode", "fail")
    assert isinstance(h.registry, FakeRegistry)
    run = h.runner.submit("m")
    h.registry.versions["5"] = {RUN_ID_TAG: str(run.id)}
    h.registry.down = True
    done = await h.finished(run.id)
    assert done.stage == "cleanup pending"
    h.registry.down = False
    await h.runner.tick()
    assert h.store.get(run.id).stage == "cleaned up"
    assert h.registry.deleted == ["5"]


async def test_the_arguments_name_the_run_its_trigger_and_the_production_data(
    make_harness: MakeHarness,
) -> None:
    settings = RetrainingSettings(
        mlflow_tracking_uri="http://mlflow:5000",
        evaluation_url="http://evaluation:8002/",
        training_window_s=3_600,
    )
    run = make_harness().runner.submit("credit risk", trigger_id=4, options={"defect": "errors"})
    assert step_arguments(run, settings) == [
        "--model", "credit risk",
        "--tracking-uri", "http://mlflow:5000",
        "--pipeline-run-id", str(run.id),
        "--trigger-id", "4",
        "--production-data",
        "http://evaluation:8002/v1/exports/credit%20risk?format=jsonl&labeled_only=true"
        f"&since={run.created_at - 3_600:.3f}",
        "--defect", "errors",
        "--json",
    ]  # fmt: skip


async def test_a_rollout_the_controller_refuses_is_recorded_not_retried(
    make_harness: MakeHarness,
) -> None:
    h = make_harness()
    h.starter.error = Conflict("m already has rollout 3 in progress")
    done = await h.until(h.runner.submit("m").id, lambda r: r.gate_verdict is not None)
    assert done.gate_verdict == "passed"
    assert done.rollout_id is None
    assert done.gate is not None
    assert "already has rollout 3" in done.gate["rollout_error"]


def test_the_local_backend_starts_a_run_once_and_reads_its_result(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    backend = LocalPipelineBackend(fake_command(), runs, tracking_uri="http://x")
    args = ["--model", "m", "--pipeline-run-id", "3", "--json"]
    handle = backend.submit(model="m", run_id="3", trigger_id="", args=args)
    assert backend.submit(model="m", run_id="3", trigger_id="", args=args) == handle == "local:3"
    deadline = time.monotonic() + 60
    while not backend.status(handle).state.finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.status(handle).state.value == "succeeded"
    result = backend.result(handle)
    assert result is not None
    assert (result["version"], result["run_id"]) == ("43", "fake-3")
    assert backend.logs(handle, tail_lines=1) == "orchard-progress 1.0 done\n"
    assert LocalPipelineBackend(fake_command(), runs).status(handle).detail == RESTARTED
    assert (runs / "3.out").is_file()


async def test_nothing_runs_twice_when_ticks_overlap(make_harness: MakeHarness) -> None:
    h = make_harness("--mode", "hang")
    run = h.runner.submit("m")
    await asyncio.gather(h.runner.tick(), h.runner.tick())
    assert h.store.get(run.id).status == "running"
    await h.runner.cancel(run.id)
