"""GET /v1/compare: canary verdicts from simulated traffic of two versions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..conftest import Evaluation, MakeEvaluation
from ..factories import event, reference_profile

SINCE = 100_020.0  # on a 60 s bucket boundary: ranges cover the buckets starting in them


async def _traffic(
    evaluation: Evaluation,
    rng: np.random.Generator,
    version: str,
    n: int,
    *,
    error_rate: float = 0.01,
    latency_ms: float = 5.0,
    accuracy: float | None = None,
    t0: float = SINCE,
    always: int | None = None,
) -> None:
    events: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        request_id = f"{version}-{t0}-{i}"
        failed = rng.uniform() < error_rate
        predicted = int(rng.uniform() < 0.5) if always is None else always
        events.append(
            event(
                request_id,
                version=version,
                ts=t0 + i * 0.01,
                status=500 if failed else 200,
                latency_ms=float(rng.gamma(4.0, latency_ms / 4.0)),
                outputs={} if failed else {"prediction": [predicted]},
            )
        )
        if accuracy is not None and not failed:
            right = rng.uniform() < accuracy
            labels.append(
                {"request_id": request_id, "label": predicted if right else 1 - predicted}
            )
    for start in range(0, n, 5_000):
        await evaluation.client.post("/v1/events", json=events[start : start + 5_000])
    for start in range(0, len(labels), 5_000):
        await evaluation.client.post("/v1/feedback", json=labels[start : start + 5_000])


async def _compare(evaluation: Evaluation, **params: Any) -> dict[str, Any]:
    query = {"model": "credit-risk", "baseline": "1", "candidate": "2", "since": SINCE, **params}
    response = await evaluation.client.get("/v1/compare", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def _signal(report: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(s for s in report["signals"] if s["metric"] == metric)


async def test_an_equal_candidate_passes_once_there_is_enough_data(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(1)
    await _traffic(evaluation, rng, "1", 4_000, accuracy=0.8)
    await _traffic(evaluation, rng, "2", 4_000, accuracy=0.8)
    report = await _compare(
        evaluation,
        latency_threshold_ms=20,
        latency_margin=0.02,
        error_margin=0.02,
        accuracy_margin=0.08,
    )
    assert [s["metric"] for s in report["signals"]] == ["error_rate", "latency", "accuracy"]
    assert report["verdict"] == "PASS", report["signals"]
    assert report["correction"]["per_signal"] == 0.05 / 3
    assert report["sample_sizes"] == {"baseline": 4_000, "candidate": 4_000}
    p99 = report["latency_quantiles"][1]
    assert p99["quantile"] == 0.99
    assert p99["ci_low"] < p99["difference"] < p99["ci_high"]


async def test_a_candidate_that_fails_more_often_fails(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(2)
    await _traffic(evaluation, rng, "1", 2_000, error_rate=0.01)
    await _traffic(evaluation, rng, "2", 500, error_rate=0.10)
    report = await _compare(evaluation)
    errors = _signal(report, "error_rate")
    assert errors["verdict"] == "FAIL"
    assert errors["sample_sizes"] == {"baseline": 2_000, "candidate": 500}
    assert report["verdict"] == "FAIL"


async def test_a_slower_candidate_fails_on_a_threshold_frozen_before_the_window(
    evaluation: Evaluation,
) -> None:
    rng = np.random.default_rng(3)
    # The hour before the canary started: the baseline alone sets the p99 threshold.
    await _traffic(evaluation, rng, "1", 1_000, t0=SINCE - 1_800)
    await _traffic(evaluation, rng, "1", 2_000)
    await _traffic(evaluation, rng, "2", 1_000, latency_ms=9.0)
    latency = _signal(await _compare(evaluation), "latency")
    assert latency["threshold_source"].startswith("baseline p99")
    assert latency["verdict"] == "FAIL"


async def test_too_little_data_is_inconclusive_never_pass(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(4)
    await _traffic(evaluation, rng, "1", 40)
    await _traffic(evaluation, rng, "2", 30)
    report = await _compare(evaluation)
    assert report["verdict"] == "INCONCLUSIVE"
    assert _signal(report, "error_rate")["verdict"] == "INCONCLUSIVE"
    assert [s["metric"] for s in report["signals"]] == ["error_rate"]  # no threshold, no labels


async def test_a_traffic_split_far_from_the_weights_is_flagged(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(5)
    await _traffic(evaluation, rng, "1", 3_000)
    await _traffic(evaluation, rng, "2", 150)  # configured 25 %, got 5 %
    report = await _compare(evaluation, candidate_weight=0.25)
    split = _signal(report, "traffic_split")
    assert split["verdict"] == "FAIL"
    assert split["mismatch"] is True
    assert report["verdict"] == "FAIL"


async def test_bad_compare_requests_are_4xx(evaluation: Evaluation) -> None:
    base = {"model": "credit-risk", "baseline": "1", "candidate": "2", "since": SINCE}
    unknown = await evaluation.client.get("/v1/compare", params=base)
    assert unknown.status_code == 404
    same = await evaluation.client.get("/v1/compare", params={**base, "candidate": "1"})
    assert same.status_code == 400
    assert "different versions" in same.json()["error"]
    no_since = {k: v for k, v in base.items() if k != "since"}
    assert (await evaluation.client.get("/v1/compare", params=no_since)).status_code == 400
    weight = await evaluation.client.get("/v1/compare", params={**base, "candidate_weight": 2})
    assert weight.status_code == 400


async def test_the_output_distribution_is_compared_from_window_profiles(
    make_evaluation: MakeEvaluation,
) -> None:
    rng = np.random.default_rng(6)
    async with make_evaluation(profile_interval_s=3_600) as evaluation:
        for version in ("1", "2"):
            await evaluation.client.put(
                f"/v1/profiles/credit-risk/{version}", json={"profile": reference_profile()}
            )
        await _traffic(evaluation, rng, "1", 600)
        await _traffic(evaluation, rng, "2", 600)
        evaluation.app.state.profiler.run_once()
        alike = (await _compare(evaluation))["output_distribution"]
        assert alike["verdict"] == "PASS"
        assert alike["gated"] is False
        assert alike["columns"][0]["method"] == "z"  # a binary output, under 1,000 baseline rows

        await _traffic(evaluation, rng, "2", 3_000, t0=SINCE + 60, always=1)
        evaluation.app.state.profiler.run_once()
        report = await _compare(evaluation)
        assert report["output_distribution"]["verdict"] == "FAIL"
        assert report["verdict"] != "FAIL"  # reported, not gated
