"""The rollout API: start, read, promote and abort by hand; bad input and conflicts."""

from __future__ import annotations

from ..conftest import Retraining
from ..test_rollout_store import CANARY


async def test_start_then_promote_by_hand(retraining: Retraining) -> None:
    started = await retraining.client.post("/v1/rollouts", json={**CANARY, "actor": "ci"})
    assert started.status_code == 201
    body = started.json()
    assert body["status"] == "canary"
    routes = next(a for a in body["actions"] if a["type"] == "set_routes")
    assert routes["weights"] == {"3": 90, "4": 10}
    rollout = body["id"]

    promoted = await retraining.client.post(
        f"/v1/rollouts/{rollout}/promote", json={"actor": "alice", "reason": "looks good"}
    )
    assert promoted.status_code == 200
    assert promoted.json()["status"] == "promoted"
    aliases = {
        (a["name"], a["version"]) for a in promoted.json()["actions"] if a["type"] == "set_alias"
    }
    assert ("champion", "4") in aliases

    read = (await retraining.client.get(f"/v1/rollouts/{rollout}")).json()
    decisions = read["state"]["decisions"]
    assert decisions[-1]["actor"] == "alice"
    assert decisions[-1]["to_status"] == "promoted"
    listed = (await retraining.client.get("/v1/rollouts", params={"model": "credit-risk"})).json()
    assert [r["id"] for r in listed["rollouts"]] == [rollout]
    again = await retraining.client.post(f"/v1/rollouts/{rollout}/abort")
    assert again.status_code == 409


async def test_bad_rollout_requests_are_4xx(retraining: Retraining) -> None:
    for body, status in (
        (b"{oops", 400),
        (b"[1]", 400),
        (b'{"model": "m"}', 400),
        (b'{"actor": 3}', 400),
    ):
        response = await retraining.client.post(
            "/v1/rollouts", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, body
        assert response.json()["error"]
    await retraining.client.post("/v1/rollouts", json=CANARY)
    twice = await retraining.client.post("/v1/rollouts", json=CANARY)
    assert twice.status_code == 409
    assert (await retraining.client.get("/v1/rollouts/999")).status_code == 404
    assert (await retraining.client.post("/v1/rollouts/999/promote")).status_code == 404
    odd = await retraining.client.post("/v1/rollouts/1/abort", json={"why": "x"})
    assert odd.status_code == 400
