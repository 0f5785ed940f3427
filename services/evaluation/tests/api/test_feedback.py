"""POST /v1/feedback: late, duplicate and unknown ids, reported per item."""

from __future__ import annotations

from ..conftest import Evaluation
from ..factories import event, label

FEEDBACK = "orchard_evaluation_feedback_ingested_total"


async def test_each_item_is_reported_joined_pending_duplicate_or_rejected(
    evaluation: Evaluation,
) -> None:
    await evaluation.client.post("/v1/events", json=[event("p1")])
    items = [
        label("p1", 1),
        label("not-yet", 0),
        label("p1", 0),
        {"request_id": "v", "value": 12.5},
        {"request_id": "nothing"},
        {"request_id": "bad", "label": {"a": 1}},
        {"label": 1},
        {"request_id": "odd", "label": 1, "extra": True},
    ]
    response = await evaluation.client.post("/v1/feedback", json={"items": items})
    assert response.status_code == 200
    body = response.json()
    assert [i["status"] for i in body["items"]] == [
        "joined",
        "pending",
        "duplicate",
        "pending",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert (body["joined"], body["pending"], body["duplicates"], body["rejected"]) == (1, 2, 1, 4)
    assert "give 'label', 'value' or both" in body["items"][4]["error"]
    assert "'request_id' is required" in body["items"][6]["error"]
    assert evaluation.metric(FEEDBACK, outcome="rejected") == 4


async def test_one_item_or_a_list_is_accepted_too(evaluation: Evaluation) -> None:
    single = await evaluation.client.post("/v1/feedback", json=label("one"))
    assert single.json()["pending"] == 1
    listed = await evaluation.client.post("/v1/feedback", json=[label("two"), label("one")])
    assert [i["status"] for i in listed.json()["items"]] == ["pending", "duplicate"]


async def test_malformed_feedback_bodies_are_400(evaluation: Evaluation) -> None:
    response = await evaluation.client.post(
        "/v1/feedback", content=b"[{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
