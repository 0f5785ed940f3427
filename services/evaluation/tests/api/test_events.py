"""POST /v1/events: gateway batches and KServe logger CloudEvents, and every kind of bad input."""

from __future__ import annotations

import orjson

from ..conftest import Evaluation, MakeEvaluation
from ..factories import event

ACCEPTED = "orchard_evaluation_events_ingested_total"


async def test_a_batch_is_stored_and_a_resend_is_reported_as_duplicates(
    evaluation: Evaluation,
) -> None:
    batch = [event("a"), event("b"), event("a", shadow=True)]
    first = await evaluation.client.post("/v1/events", json=batch)
    assert first.status_code == 200
    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": []}
    again = await evaluation.client.post("/v1/events", json={"events": batch})
    assert again.json()["duplicates"] == 3
    assert evaluation.metric(ACCEPTED, outcome="accepted") == 3
    assert evaluation.metric(ACCEPTED, outcome="duplicate") == 3


async def test_bad_events_are_rejected_one_by_one_and_the_rest_kept(
    evaluation: Evaluation,
) -> None:
    batch = [
        event("good"),
        event("no-model", model=None),
        {"request_id": "x", "model": "m", "version": "1", "surprise": 1},
        event("bad-status", status=42),
        event("nested", inputs={"age": [{"a": 1}]}),
        "not an object",
        event("future", ts=4e10),
        event("also-good", inputs={"pixels": [[1, 2], [3, 4]]}),
    ]
    response = await evaluation.client.post("/v1/events", json=batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 6)
    errors = {e["index"]: e["error"] for e in body["errors"]}
    assert "'model' is required" in errors[1]
    assert "unknown field(s): surprise" in errors[2]
    assert "status" in errors[3]
    assert "numbers, strings or booleans" in errors[4]
    assert "JSON object" in errors[5]
    assert "future" in errors[6]
    # What was accepted is really there: sending it again finds it.
    again = await evaluation.client.post("/v1/events", json=[event("good"), event("also-good")])
    assert again.json()["duplicates"] == 2


async def test_malformed_json_and_wrong_shapes_are_400(evaluation: Evaluation) -> None:
    for body in (
        b"{not json",
        b'"a string"',
        b"42",
        b'{"events": {"a": 1}}',
        b'{"events": [], "more": 1}',
    ):
        response = await evaluation.client.post(
            "/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["error"]


async def test_too_many_items_or_too_many_bytes_are_413(make_evaluation: MakeEvaluation) -> None:
    async with make_evaluation(max_batch_items=3, max_body_bytes=4_000) as evaluation:
        many = await evaluation.client.post("/v1/events", json=[event(str(i)) for i in range(4)])
        assert many.status_code == 413
        assert "at most 3" in many.json()["error"]
        huge = await evaluation.client.post(
            "/v1/events", content=orjson.dumps([event("big", inputs={"x": [0.5] * 2_000})])
        )
        assert huge.status_code == 413
        assert "ORCHARD_EVALUATION_MAX_BODY_BYTES" in huge.json()["error"]


def _binary_headers(ce_id: str, kind: str, at: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "http://localhost:9081/",
        "ce-time": at,
        "ce-inferenceservicename": "credit-risk",
        "ce-endpoint": "default",
        "ce-traceparent": "00-90bdf848647d50283394155d2df58f19-84dacdfdf07cadfc-00",
    }


async def test_kserve_logger_pairs_in_binary_mode_become_events(evaluation: Evaluation) -> None:
    request = {"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 40]}]}
    response = {
        "model_name": "credit-risk",
        "model_version": "3",
        "outputs": [{"name": "prediction", "shape": [2], "datatype": "FP64", "data": [0.1, 0.7]}],
    }
    first = await evaluation.client.post(
        "/v1/events",
        content=orjson.dumps(request),
        headers=_binary_headers("k-1", "request", "2026-11-27T10:00:00Z"),
    )
    assert first.json()["cloudevents"] == [
        {"id": "k-1", "kind": "request", "status": "waiting", "event": None}
    ]
    second = await evaluation.client.post(
        "/v1/events",
        content=orjson.dumps(response),
        headers=_binary_headers("k-1", "response", "2026-11-27T10:00:00.012Z"),
    )
    assert second.json()["cloudevents"][0]["status"] == "joined"
    # The joined event is the same prediction the gateway would have reported.
    resend = await evaluation.client.post(
        "/v1/events",
        json=[
            event("k-1", version="3", inputs={"age": [30, 40]}, outputs={"prediction": [0.1, 0.7]})
        ],
    )
    assert resend.json()["duplicates"] == 1


async def test_structured_cloudevents_batches_are_read(evaluation: Evaluation) -> None:
    def half(kind: str, data: dict) -> dict:
        return {
            "specversion": "1.0",
            "id": "s-1",
            "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "test",
            "inferenceservicename": "iris",
            "data": data,
        }

    batch = [half("request", {"instances": [[1, 2]]}), half("response", {"predictions": [1]})]
    response = await evaluation.client.post(
        "/v1/events",
        content=orjson.dumps(batch),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["cloudevents"]] == ["waiting", "joined"]


async def test_bad_cloudevents_are_400_with_a_reason(evaluation: Evaluation) -> None:
    headers = _binary_headers("k-2", "request", "2026-11-27T10:00:00Z")
    cases = [
        ({**headers, "ce-type": "com.example.other"}, b"{}", "is not org.kubeflow"),
        ({k: v for k, v in headers.items() if k != "ce-source"}, b"{}", "without source"),
        (headers, b"[1, 2]", "must be a JSON object"),
        (headers, b"{oops", "not valid JSON"),
    ]
    for sent, body, message in cases:
        response = await evaluation.client.post("/v1/events", content=body, headers=sent)
        assert response.status_code == 400
        assert message in response.json()["error"]
    # A pair whose response has no outputs cannot make an event: refused, nothing stored.
    await evaluation.client.post("/v1/events", content=b'{"instances": [[1]]}', headers=headers)
    bad = await evaluation.client.post(
        "/v1/events",
        content=b'{"something": "else"}',
        headers=_binary_headers("k-2", "response", "2026-11-27T10:00:01Z"),
    )
    assert bad.status_code == 400
    assert "neither OIP v2 'outputs' nor v1 'predictions'" in bad.json()["error"]
