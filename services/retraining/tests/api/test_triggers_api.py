"""POST /v1/triggers, POST /v1/alerts/alertmanager and GET /v1/triggers, bad input included."""

from __future__ import annotations

from ..conftest import Retraining
from ..test_alerts import PAYLOAD

TRIGGERS = "orchard_retraining_triggers_total"


async def test_evaluations_trigger_is_recorded_once_however_often_it_is_sent(
    retraining: Retraining,
) -> None:
    body = {
        "trigger_id": "evaluation-12",
        "model": "credit-risk",
        "version": "3",
        "kind": "data_drift",
        "reason": "7 of 11 features drifted",
        "details": {"drift_share": 0.64},
        "ts": 1_764_000_000.0,
    }
    first = await retraining.client.post("/v1/triggers", json=body)
    assert first.status_code == 202
    assert (first.json()["outcome"], first.json()["new"]) == ("accepted", True)
    again = await retraining.client.post("/v1/triggers", json=body)
    assert (again.json()["id"], again.json()["new"]) == (first.json()["id"], False)
    assert (
        retraining.metric(TRIGGERS, source="evaluation", kind="data_drift", outcome="accepted") == 1
    )


async def test_a_manual_trigger_within_the_cooldown_is_deduplicated(retraining: Retraining) -> None:
    await retraining.client.post("/v1/triggers", json={"model": "digits"})
    second = await retraining.client.post(
        "/v1/triggers", json={"model": "digits", "reason": "again, by hand"}
    )
    assert second.json()["outcome"] == "deduplicated"
    listed = (await retraining.client.get("/v1/triggers", params={"model": "digits"})).json()
    assert [t["outcome"] for t in listed["triggers"]] == ["deduplicated", "accepted"]
    assert listed["triggers"][1]["source"] == "manual"


async def test_alertmanager_webhooks_are_taken(retraining: Retraining) -> None:
    response = await retraining.client.post("/v1/alerts/alertmanager", json=PAYLOAD)
    assert response.status_code == 202
    body = response.json()
    assert [t["trigger"]["model"] for t in body["triggers"]] == ["credit-risk"]
    assert len(body["skipped"]) == 2
    resent = await retraining.client.post("/v1/alerts/alertmanager", json=PAYLOAD)
    assert resent.json()["triggers"][0]["new"] is False  # Alertmanager repeats: one record


async def test_bad_triggers_are_4xx(retraining: Retraining) -> None:
    cases = [
        (b"{nope", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"kind": "x"}', "'model' is required"),
        (b'{"model": ""}', "non-empty string"),
        (b'{"model": "m", "source": "oracle"}', "'source' must be one of"),
        (b'{"model": "m", "details": [1]}', "'details' must be an object"),
        (b'{"model": "m", "surprise": 1}', "unknown field(s): surprise"),
    ]
    for body, message in cases:
        response = await retraining.client.post(
            "/v1/triggers", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
        assert message in response.json()["error"]
    alerts = await retraining.client.post("/v1/alerts/alertmanager", json={"alerts": 3})
    assert alerts.status_code == 400
    assert (await retraining.client.get("/v1/triggers", params={"limit": 0})).status_code == 400
