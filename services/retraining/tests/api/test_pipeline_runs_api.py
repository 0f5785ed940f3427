"""POST/GET /v1/pipeline-runs, logs and cancel, bad input included, and triggers that start
runs through the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2

from orchard_core import new_registry
from orchard_retraining.app import create_app
from orchard_retraining.runs import PipelineRunner
from orchard_retraining.settings import RetrainingSettings

from ..conftest import MakeRetraining, Retraining
from ..runs.conftest import FakeRegistry, FakeStarter, fake_command

RUN_FIELDS = {
    "id", "model", "trigger_id", "status", "progress", "stage", "error", "options", "backend",
    "candidate_version", "mlflow_run_id", "result", "gate_verdict", "gate", "rollout_id",
    "created_at", "started_at", "finished_at", "duration_s", "auto_rollout", "actor", "reason",
}  # fmt: skip


@asynccontextmanager
async def service(
    tmp_path: Path, *options: str, **overrides: Any
) -> AsyncIterator[tuple[Retraining, PipelineRunner]]:
    """The app with MLflow replaced by a fake registry, the fake step as its training
    command, and rollouts started by a fake starter; the test ticks the runner."""
    artifacts = tmp_path / "artifacts"
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'retraining.db'}",
        "log_json": False,
        "pipeline_command": fake_command(*options, "--artifacts", str(artifacts)),
        "runs_dir": tmp_path / "runs",
        "controller_interval_s": 3600,
        **overrides,
    }
    registry = new_registry()
    app = create_app(
        RetrainingSettings(**values), registry=registry, run_registry=FakeRegistry(artifacts)
    )
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://retraining") as c:
            runner: PipelineRunner = app.state.runner
            runner.starter = FakeStarter()
            yield Retraining(app, c, registry), runner


async def _until_finished(retraining: Retraining, runner: PipelineRunner, run_id: int) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await runner.tick()
        body = (await retraining.client.get(f"/v1/pipeline-runs/{run_id}")).json()
        if body["status"] not in ("pending", "running") and body["gate_verdict"] is not None:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def test_a_run_started_by_hand_is_followed_to_its_verdict(tmp_path: Path) -> None:
    async with service(tmp_path) as (retraining, runner):
        created = await retraining.client.post(
            "/v1/pipeline-runs",
            json={"model": "digits", "options": {"seed": 2}, "actor": "ada", "reason": "why not"},
        )
        assert created.status_code == 201
        run = created.json()
        assert set(run) == RUN_FIELDS
        assert (run["status"], run["options"], run["actor"]) == ("pending", {"seed": 2}, "ada")
        done = await _until_finished(retraining, runner, run["id"])
        assert (done["status"], done["gate_verdict"], done["rollout_id"]) == (
            "succeeded",
            "passed",
            101,
        )
        assert done["duration_s"] >= 0
        logs = await retraining.client.get(f"/v1/pipeline-runs/{run['id']}/logs?tail=1")
        assert logs.headers["content-type"].startswith("text/plain")
        assert logs.text == "orchard-progress 1.0 done\n"
        listed = await retraining.client.get(
            "/v1/pipeline-runs", params={"model": "digits", "status": "succeeded"}
        )
        assert [r["id"] for r in listed.json()["pipeline_runs"]] == [run["id"]]
        none = await retraining.client.get("/v1/pipeline-runs", params={"model": "other"})
        assert none.json() == {"pipeline_runs": []}


async def test_cancel_stops_a_run_and_409s_once_finished(tmp_path: Path) -> None:
    async with service(tmp_path, "--mode", "hang") as (retraining, runner):
        run = (await retraining.client.post("/v1/pipeline-runs", json={"model": "m"})).json()
        await runner.tick()
        cancelled = await retraining.client.post(
            f"/v1/pipeline-runs/{run['id']}/cancel", json={"actor": "ada"}
        )
        assert cancelled.status_code == 200
        assert (cancelled.json()["status"], cancelled.json()["error"]) == (
            "cancelled",
            "cancelled by ada",
        )
        again = await retraining.client.post(f"/v1/pipeline-runs/{run['id']}/cancel")
        assert again.status_code == 409
        assert "already cancelled" in again.json()["error"]


async def test_bad_requests_are_4xx_with_a_message(tmp_path: Path) -> None:
    async with service(tmp_path, max_body_bytes=200) as (retraining, _):
        client = retraining.client
        cases = [
            (b"{nope", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (b'{"options": {}}', "'model' is required"),
            (b'{"model": 3}', "'model' must be a non-empty string"),
            (b'{"model": "m", "priority": 1}', "unknown field(s): priority"),
            (b'{"model": "m", "auto_rollout": "yes"}', "'auto_rollout' must be true or false"),
            (b'{"model": "m", "options": {"n_rows": 10}}', "at least 50"),
            (b'{"model": "m", "options": {"epochs": 1}}', "unknown option(s): epochs"),
        ]
        for body, message in cases:
            response = await client.post("/v1/pipeline-runs", content=body)
            assert response.status_code == 400, body
            assert message in response.json()["error"], body
        big = await client.post("/v1/pipeline-runs", content=b'{"model": "' + b"m" * 300 + b'"}')
        assert big.status_code == 413
        bad_status = await client.get("/v1/pipeline-runs", params={"status": "done"})
        assert bad_status.status_code == 400
        for path in ("/v1/pipeline-runs/99", "/v1/pipeline-runs/99/logs"):
            assert (await client.get(path)).status_code == 404
        assert (await client.post("/v1/pipeline-runs/99/cancel")).status_code == 404
        bad_cancel = await client.post("/v1/pipeline-runs/99/cancel", json={"why": 1})
        assert bad_cancel.status_code == 400


async def test_triggers_start_runs_and_show_what_they_led_to(tmp_path: Path) -> None:
    async with service(tmp_path) as (retraining, runner):
        first = await retraining.client.post("/v1/triggers", json={"model": "digits"})
        assert first.json()["led_to"] == {"pipeline_run_id": 1}
        second = await retraining.client.post("/v1/triggers", json={"model": "digits"})
        assert second.json()["outcome"] == "deduplicated"
        runs = (await retraining.client.get("/v1/pipeline-runs")).json()["pipeline_runs"]
        assert [(r["id"], r["trigger_id"]) for r in runs] == [(1, first.json()["id"])]
        await _until_finished(retraining, runner, 1)
        listed = (await retraining.client.get("/v1/triggers")).json()["triggers"]
        assert listed[1]["led_to"]["gate"] == "passed"
        assert listed[1]["led_to"]["rollout_id"] == 101


async def test_without_mlflow_runs_are_refused_and_triggers_lead_to_nothing(
    retraining: Retraining,
) -> None:
    refused = await retraining.client.post("/v1/pipeline-runs", json={"model": "m"})
    assert refused.status_code == 503
    assert "ORCHARD_RETRAINING_MLFLOW_TRACKING_URI" in refused.json()["error"]
    assert (await retraining.client.get("/v1/pipeline-runs")).json() == {"pipeline_runs": []}
    trigger = await retraining.client.post("/v1/triggers", json={"model": "m"})
    assert trigger.json()["led_to"] == {}


async def test_auto_retrain_off_records_triggers_only(
    make_retraining: MakeRetraining, tmp_path: Path
) -> None:
    async with make_retraining(
        mlflow_tracking_uri="http://127.0.0.1:9",
        auto_retrain=False,
        runs_dir=tmp_path / "runs",
        controller_interval_s=3600,
    ) as retraining:
        trigger = await retraining.client.post("/v1/triggers", json={"model": "m"})
        assert trigger.json()["led_to"] == {}
        assert (await retraining.client.get("/v1/pipeline-runs")).json() == {"pipeline_runs": []}
