"""Batch requests and batch jobs through the real gateway, runtime and registered model."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from orchard_pipelines.datasets import credit_risk

pytestmark = pytest.mark.integration

JOB_DEADLINE_S = 120.0


def _rows(n: int, seed: int) -> pd.DataFrame:
    return credit_risk.generate(n, seed=seed)[list(credit_risk.FEATURES)]


def test_a_synchronous_batch_equals_the_models_own_predictions(
    stack: Any, credit_model: Any
) -> None:
    frame = _rows(250, seed=11)
    rows = orjson.loads(frame.to_json(orient="records"))
    reply = httpx.post(
        f"{stack.gateway}/v1/models/credit-risk/batch",
        json={"rows": rows, "chunk_size": 100},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["rows"], answer["succeeded"], answer["failed"]) == (250, 250, 0)
    assert [(c["start"], c["end"]) for c in answer["chunks"]] == [(0, 100), (100, 200), (200, 250)]
    predicted = [row["predict"] for row in answer["results"]]
    np.testing.assert_array_equal(predicted, credit_model.predict(frame))
    proba = np.array([row["predict_proba"] for row in answer["results"]])
    np.testing.assert_allclose(proba, credit_model.predict_proba(frame), rtol=1e-12)


def _wait_for_job(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:
        status: dict[str, Any] = client.get(url).json()
        if status["status"] in ("succeeded", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"job not finished in {JOB_DEADLINE_S:.0f}s: {status}"
        time.sleep(0.2)  # polling interval, not a wait for an outcome


def test_a_csv_batch_job_runs_to_the_end_and_its_results_match_the_model(
    stack: Any, credit_model: Any
) -> None:
    frame = _rows(1_000, seed=12)
    upload = frame.to_csv(index=False).encode()
    with httpx.Client(base_url=stack.gateway, timeout=60) as client:
        created = client.post(
            "/v1/jobs", params={"model": "credit-risk"}, content=upload,
            headers={"Content-Type": "text/csv"},
        )  # fmt: skip
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["rows"] == 1_000
        status = _wait_for_job(client, created.headers["location"])
        assert status["status"] == "succeeded", status
        assert (status["rows_done"], status["failed_rows"], status["progress"]) == (1_000, 0, 1.0)

        lines = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "jsonl"})
        assert lines.status_code == 200
        results = [orjson.loads(line) for line in lines.content.splitlines()]
        assert [r["row"] for r in results] == list(range(1_000))
        np.testing.assert_array_equal([r["predict"] for r in results], credit_model.predict(frame))

        table = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"})
        assert table.status_code == 200
        records = list(csv.DictReader(io.StringIO(table.text)))
        assert len(records) == 1_000
        expected = credit_model.predict_proba(frame)[:, 1]
        np.testing.assert_allclose(
            [float(r["predict_proba_1"]) for r in records], expected, rtol=1e-9
        )
