"""The background evaluation: gauges per active version, and retraining triggers on drift."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from .conftest import MakeEvaluation
from .factories import credit_events, reference_profile
from .retraining_stub import RetrainingStub


@pytest.fixture
async def retraining() -> AsyncIterator[RetrainingStub]:
    stub = await RetrainingStub().start()
    yield stub
    await stub.stop()


async def test_drift_and_a_quality_drop_raise_triggers_once_and_set_gauges(
    make_evaluation: MakeEvaluation, retraining: RetrainingStub
) -> None:
    rng = np.random.default_rng(0)
    now = time.time()
    settings = {
        "retraining_url": retraining.url,
        "monitor_interval_s": 0,
        "profile_interval_s": 3_600,
    }
    async with make_evaluation(**settings) as evaluation:
        client = evaluation.client
        await client.put(
            "/v1/profiles/credit-risk/1",
            json={"profile": reference_profile(n=5_000), "metrics": {"accuracy": 0.8}},
        )
        events = credit_events(rng, 1_500, 0, now - 400, age_shift=20, income_scale=2.0)
        await client.post("/v1/events", json=events)
        # 300 labels, most of them saying the model was wrong.
        labels = [
            {
                "request_id": e["request_id"],
                "label": 1 - e["outputs"]["prediction"][0]
                if i % 5
                else e["outputs"]["prediction"][0],
            }
            for i, e in enumerate(events[:300])
        ]
        await client.post("/v1/feedback", json=labels)
        evaluation.app.state.profiler.run_once()

        monitor = evaluation.app.state.monitor
        [result] = await monitor.run_pass()
        assert {"data_drift", "prediction_drift", "quality_degraded"} <= set(result.triggers)
        again = await monitor.run_pass()
        assert again[0].triggers == []  # the same incident: deduplicated within the cooldown

        sender = evaluation.app.state.triggers
        while len(retraining.received) < len(result.triggers):
            sender.settled.clear()
            await asyncio.wait_for(sender.settled.wait(), timeout=10)
        kinds = {t["kind"] for t in retraining.received}
        assert "data_drift" in kinds
        drift = next(t for t in retraining.received if t["kind"] == "data_drift")
        assert "features drifted" in drift["reason"]

        def gauge(name: str, **labels: str) -> float | None:
            return evaluation.registry.get_sample_value(
                name, {"model": "credit-risk", "version": "1", **labels}
            )

        assert gauge("orchard_evaluation_drift_detected", part="features", column="age") == 1
        assert gauge("orchard_evaluation_drift_detected", part="features", column="income") == 1
        kinds_drift = "employment_type"
        assert gauge("orchard_evaluation_drift_detected", part="features", column=kinds_drift) == 0
        assert gauge("orchard_evaluation_dataset_drift", part="outputs") == 1
        assert gauge("orchard_evaluation_label_coverage") == pytest.approx(0.2)
        assert gauge("orchard_evaluation_quality", source="realized", metric="accuracy") == (
            pytest.approx(0.2)
        )
        assert gauge("orchard_evaluation_reference_quality", metric="accuracy") == 0.8

        # Hours later the version has no traffic: it is no longer active, its gauges go.
        await monitor.run_pass(now=now + 10 * 3_600)
        assert gauge("orchard_evaluation_drift_detected", part="features", column="age") is None


async def test_a_healthy_version_raises_nothing(
    make_evaluation: MakeEvaluation, retraining: RetrainingStub
) -> None:
    rng = np.random.default_rng(1)
    now = time.time()
    async with make_evaluation(
        retraining_url=retraining.url, monitor_interval_s=0, profile_interval_s=3_600
    ) as evaluation:
        await evaluation.client.put(
            "/v1/profiles/credit-risk/1",
            json={"profile": reference_profile(n=5_000), "metrics": {"accuracy": 0.5}},
        )
        await evaluation.client.post("/v1/events", json=credit_events(rng, 1_500, 0, now - 400))
        evaluation.app.state.profiler.run_once()
        [result] = await evaluation.app.state.monitor.run_pass()
        assert result.triggers == []
        assert (await evaluation.client.get("/v1/triggers")).json()["triggers"] == []


async def test_a_slightly_low_accuracy_on_few_labels_is_not_a_quality_drop(
    make_evaluation: MakeEvaluation, retraining: RetrainingStub
) -> None:
    # 0.775 on 120 labels against a 0.84 training accuracy (tolerance 0.05: line at 0.79) is
    # well inside sampling noise (one-sided 95 % upper bound about 0.83); 0.2 would not be.
    rng = np.random.default_rng(2)
    now = time.time()
    async with make_evaluation(
        retraining_url=retraining.url, monitor_interval_s=0, profile_interval_s=3_600
    ) as evaluation:
        await evaluation.client.put(
            "/v1/profiles/credit-risk/1",
            json={"profile": reference_profile(n=5_000), "metrics": {"accuracy": 0.84}},
        )
        events = credit_events(rng, 1_500, 0, now - 400)
        await evaluation.client.post("/v1/events", json=events)
        labels = [
            {
                "request_id": e["request_id"],
                "label": e["outputs"]["prediction"][0]
                if i % 40 < 31
                else 1 - e["outputs"]["prediction"][0],
            }
            for i, e in enumerate(events[:120])
        ]
        await evaluation.client.post("/v1/feedback", json=labels)
        evaluation.app.state.profiler.run_once()
        [result] = await evaluation.app.state.monitor.run_pass()
        assert "quality_degraded" not in result.triggers
        quality = evaluation.registry.get_sample_value(
            "orchard_evaluation_quality",
            {"model": "credit-risk", "version": "1", "source": "realized", "metric": "accuracy"},
        )
        assert quality == pytest.approx(0.775)
