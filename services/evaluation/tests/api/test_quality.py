"""GET /v1/quality: realized and estimated metrics, coverage, delay and concept drift."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import Evaluation
from ..factories import event


async def _serve(
    evaluation: Evaluation,
    rng: np.random.Generator,
    n: int,
    *,
    start: int = 0,
    flip: float = 0.0,
    labeled: float = 1.0,
    t0: float = 10_000.0,
) -> None:
    """``n`` calibrated binary predictions; labels Bernoulli(p), then ``flip`` of them
    inverted (a changed concept); a ``labeled`` share of them labeled 30 s later."""
    p = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(size=n) < p).astype(int)
    y = np.where(rng.uniform(size=n) < flip, 1 - y, y)
    events = [
        event(
            f"q{start + i}",
            ts=t0 + start + i,
            outputs={"prediction": [int(p[i] >= 0.5)], "predict_proba": [1 - p[i], p[i]]},
        )
        for i in range(n)
    ]
    for chunk in range(0, n, 2_000):
        await evaluation.client.post("/v1/events", json=events[chunk : chunk + 2_000])
    keep = rng.uniform(size=n) < labeled
    labels = [
        {"request_id": f"q{start + i}", "label": int(y[i]), "ts": t0 + start + i + 30.0}
        for i in range(n)
        if keep[i]
    ]
    for chunk in range(0, len(labels), 2_000):
        await evaluation.client.post("/v1/feedback", json=labels[chunk : chunk + 2_000])


async def test_realized_and_estimated_agree_on_a_calibrated_model(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(7)
    await _serve(evaluation, rng, 3_000, labeled=0.5)
    response = await evaluation.client.get("/v1/quality", params={"model": "credit-risk"})
    assert response.status_code == 200
    report = response.json()
    assert report["output"] == "predict_proba"
    realized = report["realized"]
    stats = realized["labels"]
    assert stats["n_predictions"] == 3_000
    assert stats["coverage"] == pytest.approx(0.5, abs=0.05)
    assert stats["delay_median_s"] == pytest.approx(30.0)
    accuracy = realized["metrics"]["accuracy"]["value"]
    estimated = report["estimated"]["metrics"]["accuracy"]["value"]
    assert estimated == pytest.approx(accuracy, abs=0.03)
    assert report["estimated"]["trustworthy"] is True
    assert report["concept_drift"]["drift_detected"] is False


async def test_a_changed_concept_is_detected_on_the_error_stream(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(11)
    await _serve(evaluation, rng, 1_500)
    await _serve(evaluation, rng, 1_500, start=1_500, flip=0.4)
    response = await evaluation.client.get(
        "/v1/quality", params={"model": "credit-risk", "concept_method": "adwin"}
    )
    drift = response.json()["concept_drift"]
    assert drift["drift_detected"] is True
    assert drift["first_detection_index"] > 1_400  # after the change, not before
    assert drift["error_rate_after"] > drift["error_rate_before"]


async def test_without_labels_only_the_estimate_has_values(evaluation: Evaluation) -> None:
    await _serve(evaluation, np.random.default_rng(3), 500, labeled=0.0)
    report = (await evaluation.client.get("/v1/quality", params={"model": "credit-risk"})).json()
    assert report["realized"]["metrics"]["accuracy"]["value"] is None
    assert report["realized"]["labels"]["coverage"] == 0.0
    assert report["estimated"]["metrics"]["accuracy"]["value"] is not None


async def test_bad_quality_requests_are_4xx(evaluation: Evaluation) -> None:
    unknown = await evaluation.client.get("/v1/quality", params={"model": "nobody"})
    assert unknown.status_code == 404
    await _serve(evaluation, np.random.default_rng(1), 20)
    cases = [
        ({"output": "missing"}, "no output 'missing'"),
        ({"concept_method": "magic"}, "magic"),
        ({"concept_params": "[1]"}, "JSON object"),
        ({"output": "prediction", "concept_params": '{"nonsense": 1}'}, "nonsense"),
    ]
    for params, message in cases:
        response = await evaluation.client.get(
            "/v1/quality", params={"model": "credit-risk", **params}
        )
        assert response.status_code == 400, params
        assert message in response.json()["error"]
