"""`orchard pipeline` against a fake retraining service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from orchard_cli.main import app

from .fake_http import FakeServer, Request

runner = CliRunner()


def _run(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": 12,
        "model": "credit-risk",
        "trigger_id": None,
        "status": status,
        "progress": 0.0,
        "stage": None,
        "error": None,
        "options": {},
        "candidate_version": None,
        "mlflow_run_id": None,
        "gate_verdict": None,
        "gate": None,
        "rollout_id": None,
        "created_at": 1.0,
        "started_at": None,
        "finished_at": None,
        "duration_s": None,
        **fields,
    }


class Script:
    def __init__(self, *runs: dict[str, Any]) -> None:
        self.runs = list(runs)

    def __call__(self, request: Request) -> tuple[int, Any]:
        if request.method == "POST" and request.path == "/v1/pipeline-runs":
            return 201, _run("pending")
        if request.path == "/v1/pipeline-runs":
            return 200, {"pipeline_runs": [self.runs[-1]]}
        if request.path == "/v1/pipeline-runs/12":
            return 200, self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]
        if request.path == "/v1/pipeline-runs/12/logs":
            return 200, "line 1\nline 2\n", {"Content-Type": "text/plain"}
        return 404, {"error": "not found"}


SUCCEEDED = _run(
    "succeeded",
    progress=1.0,
    stage="done",
    candidate_version="5",
    gate_verdict="passed",
    gate={"reason": "roc_auc 0.84 vs 0.79"},
    rollout_id=3,
    duration_s=42.0,
)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(Script(SUCCEEDED)) as fake:
        yield fake


def _invoke(server: FakeServer, *args: str) -> Any:
    return runner.invoke(app, [*args, "--retraining-url", server.url])


def test_run_wait_shows_the_stages_and_exits_0_on_success(server: FakeServer):
    server.handler = Script(
        _run("running", progress=0.3, stage="training"),
        _run("running", progress=0.8, stage="quality gate"),
        SUCCEEDED,
    )

    result = _invoke(
        server,
        *("pipeline", "run", "--model", "credit-risk", "--defect", "errors", "--seed", "7"),
        *("--no-rollout", "--wait", "--interval", "0.01"),
    )

    assert result.exit_code == 0, result.output
    (post,) = server.of("POST", "/v1/pipeline-runs")
    assert post.json() == {
        "model": "credit-risk",
        "options": {"defect": "errors", "seed": 7},
        "auto_rollout": False,
    }
    assert "running: training (30%)" in result.output
    assert "running: quality gate (80%)" in result.output
    assert result.output.splitlines()[-1] == (
        "Pipeline run 12 of credit-risk: succeeded in 42 s; candidate version 5; "
        "quality gate passed; rollout 3 started"
    )


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_run_wait_exits_1_when_the_run_does_not_succeed(server: FakeServer, status: str):
    server.handler = Script(_run(status, error="training crashed"))

    result = _invoke(server, "pipeline", "run", "--model", "credit-risk", "--wait")

    assert result.exit_code == 1
    assert f"{status}; error: training crashed" in result.output


def test_run_json_prints_the_final_run_only_on_stdout(server: FakeServer):
    result = _invoke(
        server,
        "pipeline",
        "run",
        "--model",
        "credit-risk",
        "--wait",
        "--json",
        "--interval",
        "0.01",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["candidate_version"] == "5"


def test_status_shows_the_newest_run_with_its_gate_and_log(server: FakeServer):
    result = _invoke(
        server, "pipeline", "status", "--model", "credit-risk", "--logs", "--tail", "2"
    )

    assert result.exit_code == 0, result.output
    assert "Pipeline run 12 of credit-risk: succeeded" in result.output
    assert "gate: roc_auc 0.84 vs 0.79" in result.output
    assert result.output.rstrip().endswith("line 1\nline 2")
    (logs,) = server.of("GET", "/v1/pipeline-runs/12/logs")
    assert logs.query == {"tail": "2"}


def test_status_with_no_runs_exits_2(server: FakeServer):
    server.handler = lambda r: (200, {"pipeline_runs": []})

    result = _invoke(server, "pipeline", "status")

    assert result.exit_code == 2
    assert "No pipeline runs yet." in result.stderr


def test_an_unknown_run_is_a_404_message_and_exit_2(server: FakeServer):
    server.handler = lambda r: (404, {"error": "no pipeline run 99"})

    result = _invoke(server, "pipeline", "status", "99")

    assert result.exit_code == 2
    assert "retraining refused the request (404): no pipeline run 99" in result.stderr
