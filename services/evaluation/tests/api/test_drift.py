"""Window profiles from ingested events, and GET /v1/drift over any range of them."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..conftest import Evaluation, MakeEvaluation
from ..factories import credit_events, reference_profile

T0 = 1_700_000_040.0  # a bucket boundary for 60 s buckets, in the past


async def _setup(evaluation: Evaluation) -> None:
    put = await evaluation.client.put(
        "/v1/profiles/credit-risk/1", json={"profile": reference_profile(n=5_000)}
    )
    assert put.status_code == 201


async def _drift(evaluation: Evaluation, **params: Any) -> dict[str, Any]:
    response = await evaluation.client.get(
        "/v1/drift", params={"model": "credit-risk", "version": "1", **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _verdicts(report: dict[str, Any], part: str) -> dict[str, Any]:
    return {c["column"]: c["drifted"] for c in report[part]["columns"]}


async def test_drift_over_any_range_is_a_merge_of_buckets(make_evaluation: MakeEvaluation) -> None:
    rng = np.random.default_rng(0)
    async with make_evaluation(profile_interval_s=3_600) as evaluation:
        await _setup(evaluation)
        await evaluation.client.post("/v1/events", json=credit_events(rng, 1_500, 0, T0))
        await evaluation.client.post(
            "/v1/events", json=credit_events(rng, 1_500, 10_000, T0 + 180, age_shift=20)
        )
        fetched, _ = evaluation.app.state.profiler.run_once()
        assert fetched == 3_000
        assert evaluation.app.state.profiler.run_once() == (0, 0)  # each event counted once

        before = await _drift(evaluation, since=T0, until=T0 + 180)
        assert before["n_rows"] == 1_500
        assert _verdicts(before, "data_drift") == {
            "age": False,
            "income": False,
            "employment_type": False,
        }
        assert before["data_drift"]["dataset_drifted"] is False
        age = next(c for c in before["data_drift"]["columns"] if c["column"] == "age")
        assert age["method"] == "wasserstein"
        assert age["threshold"] == 0.1

        after = await _drift(evaluation, since=T0 + 180, until=T0 + 360)
        assert after["n_rows"] == 1_500
        assert _verdicts(after, "data_drift")["age"] is True
        assert _verdicts(after, "data_drift")["income"] is False
        assert _verdicts(after, "prediction_drift") == {"prediction": True}

        everything = await _drift(evaluation)
        assert everything["n_rows"] == 3_000


async def test_a_range_without_data_has_no_verdict(evaluation: Evaluation) -> None:
    await _setup(evaluation)
    report = await _drift(evaluation, since=T0, until=T0 + 60)
    assert report["n_rows"] == 0
    assert set(_verdicts(report, "data_drift").values()) == {None}
    assert report["data_drift"]["dataset_drifted"] is None


async def test_events_wait_for_their_reference_then_are_skipped(
    make_evaluation: MakeEvaluation,
) -> None:
    rng = np.random.default_rng(1)
    async with make_evaluation(profile_interval_s=3_600, reference_wait_s=60) as evaluation:
        await evaluation.client.post("/v1/events", json=credit_events(rng, 10, 0, T0, version="7"))
        profiler = evaluation.app.state.profiler
        assert profiler.run_once()[0] == 10
        assert profiler.run_once()[0] == 10  # still waiting for the reference: fetched again
        # The reference never comes; past the wait the events stop waiting.
        profiler.run_once(now=time.time() + 120)
        assert profiler.run_once() == (0, 0)
        assert (
            evaluation.metric("orchard_evaluation_events_profiled_total", outcome="skipped") == 10
        )


async def test_bad_drift_requests_are_4xx(evaluation: Evaluation) -> None:
    unknown = await evaluation.client.get(
        "/v1/drift", params={"model": "credit-risk", "version": "404"}
    )
    assert unknown.status_code == 404
    await _setup(evaluation)
    for params, message in (
        ({"methods": "{oops"}, "JSON object"),
        ({"methods": '{"age": "magic"}'}, "magic"),
        ({"methods": '{"employment_type": "wasserstein"}'}, "employment_type"),
        ({"thresholds": '["x"]'}, "JSON object"),
    ):
        response = await evaluation.client.get(
            "/v1/drift", params={"model": "credit-risk", "version": "1", **params}
        )
        assert response.status_code == 400, params
        assert message in response.json()["error"]


async def test_ingest_profiles_and_drift_work_the_same_on_postgresql(
    make_evaluation: MakeEvaluation, postgres_server: str
) -> None:
    import psycopg

    with psycopg.connect(
        postgres_server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as connection:
        connection.execute("CREATE DATABASE drift_end_to_end")
    url = postgres_server.rsplit("/", 1)[0] + "/drift_end_to_end"
    rng = np.random.default_rng(5)
    async with make_evaluation(database_url=url, profile_interval_s=3_600) as evaluation:
        await _setup(evaluation)
        events = credit_events(rng, 1_500, 0, T0, age_shift=20)
        assert (await evaluation.client.post("/v1/events", json=events)).json()["accepted"] == 1_500
        again = await evaluation.client.post("/v1/events", json=events[:10])
        assert again.json()["duplicates"] == 10
        assert evaluation.app.state.profiler.run_once()[0] == 1_500
        report = await _drift(evaluation, since=T0, until=T0 + 180)
        assert report["n_rows"] == 1_500
        assert _verdicts(report, "data_drift")["age"] is True


async def test_prediction_drift_reads_the_class_from_what_the_runtime_serves(
    make_evaluation: MakeEvaluation,
) -> None:
    # The runtime answers `predict` and `predict_proba`; a network answers `logits`. The
    # reference profiles the class as `prediction`: it is taken from whichever is there.
    rng = np.random.default_rng(8)
    async with make_evaluation(profile_interval_s=3_600) as evaluation:
        await _setup(evaluation)
        events = credit_events(rng, 1_500, 0, T0)
        for index, item in enumerate(events):
            label = item["outputs"].pop("prediction")[0]
            item["outputs"] = (
                {"predict": [label]}
                if index % 2
                else {"logits": [0.3, 2.0] if label else [2.0, 0.3]}
            )
        await evaluation.client.post("/v1/events", json=events)
        evaluation.app.state.profiler.run_once()
        report = await _drift(evaluation, since=T0, until=T0 + 180)
        [prediction] = report["prediction_drift"]["columns"]
        assert prediction["column"] == "prediction"
        assert prediction["current_count"] == 1_500
        assert prediction["drifted"] is False
