"""GET /v1/routes: the table as gateways poll it, with ETag and 304."""

from __future__ import annotations

from ..test_controller import CANARY, RUNTIME, Env, EvaluationStub, env, evaluation, step  # noqa: F401


async def test_the_table_is_cached_by_etag_and_changes_with_the_weights(env: Env) -> None:  # noqa: F811
    async with env.start() as running:
        empty = await running.client.get("/v1/routes")
        assert empty.status_code == 200
        assert empty.json() == {"models": {}}
        assert empty.headers["cache-control"] == "no-cache"

        await running.client.post("/v1/rollouts", json=CANARY)
        first = await running.client.get("/v1/routes")
        etag = first.headers["etag"]
        assert etag != empty.headers["etag"]
        assert first.json() == {
            "models": {
                "credit-risk": {
                    "versions": [
                        {"version": "3", "target_url": RUNTIME, "weight": 90.0, "role": "champion"},
                        {"version": "4", "target_url": RUNTIME, "weight": 10.0, "role": "canary"},
                    ],
                    "mirrors": [],
                    "sticky_key": "X-Orchard-Unit",
                    "experiment": None,
                }
            }
        }
        again = await running.client.get("/v1/routes")
        assert again.headers["etag"] == etag
        assert again.content == first.content
        unchanged = await running.client.get("/v1/routes", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == etag

        await step(running, env.clock)  # PASS: 10 % → 50 %
        moved = await running.client.get("/v1/routes", headers={"If-None-Match": etag})
        assert moved.status_code == 200
        assert moved.headers["etag"] != etag
        weights = [v["weight"] for v in moved.json()["models"]["credit-risk"]["versions"]]
        assert weights == [50.0, 50.0]
