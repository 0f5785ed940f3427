"""`orchard rollout` against a fake retraining service: output, request bodies, exit codes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from orchard_cli.main import app

from .fake_http import FakeServer, Request

runner = CliRunner()

VERDICT = {
    "verdict": "PASS",
    "signals": [
        {"metric": "error_rate", "verdict": "PASS", "statistic": -0.0021},
        {"metric": "latency", "verdict": "PASS", "statistic": 0.004},
    ],
    "sample_sizes": {"baseline": 480, "candidate": 120},
}
FAIL_VERDICT = {
    "verdict": "FAIL",
    "signals": [{"metric": "error_rate", "verdict": "FAIL", "statistic": 0.97}],
    "sample_sizes": {"baseline": 400, "candidate": 96},
}


def _decision(action: str, frm: str, to: str, to_step: int | None, verdict: Any = None) -> dict:
    return {
        "at": 1_700_000_000.0,
        "from_status": frm,
        "to_status": to,
        "action": action,
        "reason": f"{action} reason",
        "from_step": None,
        "to_step": to_step,
        "verdict": verdict,
        "samples": None if verdict is None else 120,
        "actor": None,
    }


def _rollout(status: str, decisions: list[dict], weight: float = 0.0) -> dict[str, Any]:
    return {
        "id": 7,
        "model": "credit-risk",
        "candidate_version": "4",
        "status": status,
        "created_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
        "spec": {"champion_version": "3", "strategy": "canary", "steps": [20, 50, 100]},
        "state": {"status": status, "step": 0, "candidate_weight": weight, "decisions": decisions},
    }


START = _decision("start", "pending", "canary", 0)
ADVANCE = _decision("advance", "canary", "canary", 1, VERDICT)
PROMOTE = _decision("promote", "canary", "promoted", None, VERDICT)
ROLLBACK = _decision("rollback", "canary", "rolled_back", None, FAIL_VERDICT)


class Script:
    """Answers GET /v1/rollouts/7 with each of ``states`` in turn (the last one repeats)."""

    def __init__(self, *states: tuple[int, Any]) -> None:
        self.states = list(states)

    def __call__(self, request: Request) -> tuple[int, Any]:
        if request.method == "POST" and request.path == "/v1/rollouts":
            return 201, _rollout("canary", [START], 20)
        if request.path == "/v1/rollouts":
            return 200, {"rollouts": [_rollout("canary", [START], 20)]}
        if request.path == "/v1/rollouts/7":
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if request.path == "/v1/rollouts/7/promote":
            return 409, {"error": "rollout 7 is already promoted"}
        return 404, {"error": "not found"}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(Script((200, _rollout("canary", [START], 20)))) as fake:
        yield fake


def _invoke(server: FakeServer, *args: str) -> Any:
    return runner.invoke(app, [*args, "--retraining-url", server.url])


def test_start_wait_follows_the_decisions_and_exits_0_when_promoted(server: FakeServer):
    server.handler = Script(
        (200, _rollout("canary", [START, ADVANCE], 50)),
        (200, _rollout("promoted", [START, ADVANCE, PROMOTE], 100)),
    )
    result = _invoke(
        server,
        *("rollout", "start", "--model", "credit-risk", "--candidate", "4"),
        *("--steps", "20,50,100", "--strategy", "canary", "--set", "compare.alpha=0.01"),
        *("--set", "sticky_key=X-User", "--actor", "ci", "--wait", "--interval", "0.01"),
    )

    assert result.exit_code == 0, result.output
    (post,) = server.of("POST", "/v1/rollouts")
    assert post.json() == {
        "model": "credit-risk",
        "candidate_version": "4",
        "strategy": "canary",
        "steps": [20, 50, 100],
        "compare": {"alpha": 0.01},
        "sticky_key": "X-User",
        "actor": "ci",
    }
    lines = result.output.splitlines()
    assert "Rollout 7 of credit-risk: candidate 4 vs champion 3, canary 20%→50%→100%" in lines
    advance = next(line for line in lines if "advance" in line)
    assert "canary → canary" in advance
    assert "weight 50%" in advance
    assert "PASS · error_rate PASS Δ-0.002 · latency PASS Δ+0.004 · n 480/120" in advance
    assert sum("promote " in line for line in lines) == 1  # each decision printed once
    assert lines[-1] == "Rollout 7 promoted: credit-risk version 4 is the champion"


def test_start_wait_exits_1_when_rolled_back(server: FakeServer):
    server.handler = Script((200, _rollout("rolled_back", [START, ROLLBACK], 0)))

    result = _invoke(
        server, "rollout", "start", "--model", "credit-risk", "--candidate", "4", "--wait"
    )

    assert result.exit_code == 1
    rollback = next(line for line in result.output.splitlines() if "rollback" in line)
    assert "canary → rolled_back  weight 0%  FAIL · error_rate FAIL Δ+0.970" in rollback
    assert "Rollout 7 rolled back" in result.output


def test_a_brief_outage_is_retried_and_said_so(server: FakeServer):
    server.handler = Script(
        (503, {"error": "database is locked"}),
        (200, _rollout("aborted", [START, _decision("abort", "canary", "aborted", None)])),
    )

    result = _invoke(
        server,
        *("rollout", "status", "7", "--wait", "--interval", "0.01"),
        *("--unreachable-timeout", "30"),
    )

    assert result.exit_code == 1, result.output
    assert "retraining answered 503: database is locked — retrying for up to 30 s" in (
        result.stderr
    )
    assert "Rollout 7 aborted" in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_service_exits_3_after_the_timeout():
    url = f"http://127.0.0.1:{_closed_port()}"

    result = runner.invoke(
        app,
        [
            *("rollout", "start", "--model", "m", "--candidate", "2", "--wait"),
            *("--retraining-url", url, "--unreachable-timeout", "0.2"),
        ],
    )

    assert result.exit_code == 3
    assert f"cannot connect to retraining at {url} (is it running?)" in result.stderr


def test_a_refused_request_prints_the_services_error_and_exits_2(server: FakeServer):
    server.handler = lambda r: (400, {"error": "steps must increase strictly: 5 follows 25"})

    result = _invoke(server, "rollout", "start", "--model", "m", "--candidate", "2")

    assert result.exit_code == 2
    assert (
        "retraining refused the request (400): steps must increase strictly: 5 follows 25"
        in result.stderr
    )


def test_promoting_a_finished_rollout_exits_2(server: FakeServer):
    result = _invoke(server, "rollout", "promote", "7", "--reason", "looks good")

    assert result.exit_code == 2
    assert "(409): rollout 7 is already promoted" in result.stderr
    (post,) = server.of("POST", "/v1/rollouts/7/promote")
    assert post.json()["reason"] == "looks good"


def test_status_without_an_id_shows_the_newest_rollout_of_the_model_as_json(server: FakeServer):
    result = _invoke(server, "rollout", "status", "--model", "credit-risk", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == 7
    (listing,) = server.of("GET", "/v1/rollouts")
    assert listing.query == {"model": "credit-risk", "limit": "1"}


def test_status_lists_the_decisions(server: FakeServer):
    result = _invoke(server, "rollout", "status", "7")

    assert result.exit_code == 0, result.output
    assert "start     pending → canary  weight 20%" in result.output
    assert "rollout 7 of credit-risk v4: canary, candidate weight 20%" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "5,x"],
        ["--strategy", "big-bang"],
        ["--set", "no-equals-sign"],
    ],
)
def test_bad_options_are_usage_errors(server: FakeServer, args: list[str]):
    result = _invoke(server, "rollout", "start", "--model", "m", "--candidate", "2", *args)

    assert result.exit_code == 2
    assert server.requests == []


def test_the_help_documents_the_exit_codes():
    result = runner.invoke(app, ["rollout", "start", "--help"], terminal_width=200)

    assert "0 promoted; 1 rolled back or aborted" in result.output
    assert "3 retraining unreachable" in result.output
