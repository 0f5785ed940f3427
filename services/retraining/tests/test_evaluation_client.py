"""Asking evaluation: real HTTP on loopback; every failure is EvaluationUnreachable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from orchard_core import new_registry
from orchard_retraining.evaluation_client import EvaluationClient
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.rollouts import (
    AskEvaluation,
    EvaluationUnreachable,
    RolloutSpec,
    RolloutState,
    Start,
    Tick,
    Verdict,
    advance,
)

from .test_controller import EvaluationStub, evaluation  # noqa: F401 - fixture

ASK = AskEvaluation(
    "compare", "credit-risk", "3", "4", since=1000.0, min_samples=50, candidate_weight=0.25
)


@pytest.fixture
async def client(evaluation: EvaluationStub) -> AsyncIterator[tuple[EvaluationClient, Any]]:  # noqa: F811
    registry = new_registry()
    async with aiohttp.ClientSession() as session:
        yield (
            EvaluationClient(evaluation.url, session, RetrainingMetrics(registry), timeout_s=2),
            registry,
        )


def outcome(registry: Any, name: str) -> float:
    return (
        registry.get_sample_value("orchard_retraining_evaluation_requests_total", {"outcome": name})
        or 0.0
    )


async def test_a_compare_answer_is_a_verdict_for_the_window(
    client: tuple[EvaluationClient, Any],
    evaluation: EvaluationStub,  # noqa: F811
) -> None:
    ask, registry = client
    evaluation.answer = (
        200,
        {"verdict": "PASS", "sample_sizes": {"baseline": 900, "candidate": 120}},
    )
    verdict = await ask.ask(ASK)
    assert isinstance(verdict, Verdict)
    assert (verdict.verdict, verdict.samples, verdict.since) == ("PASS", 120, 1000.0)
    assert evaluation.asked[-1] == {
        "model": "credit-risk",
        "baseline": "3",
        "candidate": "4",
        "since": "1000.0",
        "min_samples": "50",
        "candidate_weight": "0.25",
    }
    assert outcome(registry, "ok") == 1


async def test_compare_settings_travel_from_the_spec_to_the_query(
    client: tuple[EvaluationClient, Any],
    evaluation: EvaluationStub,  # noqa: F811
) -> None:
    spec = RolloutSpec(
        model="m", champion_version="1", candidate_version="2", steps=(10.0, 100.0),
        step_interval_s=1, compare={"error_margin": 0.05, "alpha": 0.01, "latency_threshold_ms": 250},
    )  # fmt: skip
    assert RolloutSpec.from_dict(spec.to_dict()) == spec
    state = advance(spec, RolloutState(), Start(), 0.0).state
    ask = advance(spec, state, Tick(), 2.0).actions[0]
    assert isinstance(ask, AskEvaluation)
    assert ask.to_dict()["compare"] == {
        "error_margin": 0.05,
        "alpha": 0.01,
        "latency_threshold_ms": 250,
    }
    await client[0].ask(ask)
    query = evaluation.asked[-1]
    assert (query["error_margin"], query["alpha"], query["latency_threshold_ms"]) == (
        "0.05", "0.01", "250.0",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        ({"margin": 0.1}, "unknown compare settings: margin"),
        ({"error_margin": 1.5}, r"compare.error_margin must lie in \[0, 1\]"),
        ({"alpha": 0}, r"compare.alpha must lie in \(0, 1\)"),
        ({"latency_threshold_ms": -1}, r"compare.latency_threshold_ms must lie in \(0, inf\)"),
        ({"alpha": "x"}, "compare.alpha must be a finite number"),
        ([1], "compare must be an object"),
    ],
)
def test_bad_compare_settings_are_refused(compare: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutSpec.from_dict(
            {"model": "m", "champion_version": "1", "candidate_version": "2", "compare": compare}
        )


async def test_no_predictions_yet_is_inconclusive_not_a_failure(
    client: tuple[EvaluationClient, Any],
    evaluation: EvaluationStub,  # noqa: F811
) -> None:
    evaluation.answer = (
        404,
        {"error": "no predictions of credit-risk versions 3 or 4 in the window"},
    )
    verdict = await client[0].ask(ASK)
    assert isinstance(verdict, Verdict)
    assert (verdict.verdict, verdict.samples) == ("INCONCLUSIVE", 0)


@pytest.mark.parametrize(
    ("answer", "expected", "kind"),
    [
        ((500, {"error": "boom"}), "HTTP 500: boom", "unreachable"),
        (
            (400, {"error": "alpha must be in (0, 1)"}),
            "a bug in the controller's request",
            "invalid",
        ),
        ((404, {"error": "Not Found"}), "HTTP 404", "invalid"),
        ((200, {"verdict": "MAYBE"}), "not a verdict", "invalid"),
        ((200, [1, 2]), "not a JSON object", "invalid"),
    ],
)
async def test_unusable_answers_pause_the_rollout(
    client: tuple[EvaluationClient, Any],
    evaluation: EvaluationStub,  # noqa: F811
    answer: tuple[int, Any],
    expected: str,
    kind: str,
) -> None:
    evaluation.answer = answer
    result = await client[0].ask(ASK)
    assert isinstance(result, EvaluationUnreachable)
    assert expected in result.error
    assert outcome(client[1], kind) == 1


async def test_a_closed_port_or_no_url_is_unreachable(free_port: int) -> None:
    metrics = RetrainingMetrics(new_registry())
    async with aiohttp.ClientSession() as session:
        down = EvaluationClient(f"http://127.0.0.1:{free_port}", session, metrics, timeout_s=2)
        result = await down.ask(ASK)
        assert isinstance(result, EvaluationUnreachable)
        assert "unreachable" in result.error
        none = await EvaluationClient(None, session, metrics).ask(ASK)
        assert isinstance(none, EvaluationUnreachable)


async def test_an_experiment_is_judged_on_the_candidate_arm(
    client: tuple[EvaluationClient, Any],
    evaluation: EvaluationStub,  # noqa: F811
) -> None:
    ask = AskEvaluation(
        "experiment", "m", "3", "4", since=5.0, min_samples=1, candidate_weight=0.3,
        experiment="exp-1", compare={"alpha": 0.1},
    )  # fmt: skip
    comparison = {"arm": "arm-4", "control": "arm-3", "verdict": "PASS",
                  "sample_sizes": {"control": 300, "arm": 150}}  # fmt: skip
    evaluation.answer = (200, {"comparisons": [comparison], "srm": {"mismatch": False}})
    verdict = await client[0].ask(ask)
    assert isinstance(verdict, Verdict)
    assert (verdict.verdict, verdict.samples) == ("PASS", 150)
    assert evaluation.paths[-1] == "/v1/experiments/exp-1"
    query = evaluation.asked[-1]
    assert query["control"] == "arm-3"
    assert query["min_samples"] == "2"
    assert query["alpha"] == "0.1"
    assert query["weights"] == '{"arm-3":0.7,"arm-4":0.3}'

    evaluation.answer = (200, {"comparisons": [comparison], "srm": {"mismatch": True}})
    biased = await client[0].ask(ask)
    assert isinstance(biased, Verdict)
    assert biased.verdict == "INCONCLUSIVE"  # never promoted on a broken split
