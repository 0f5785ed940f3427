"""Window profiling when a new version's reference arrives from the registry mid-traffic."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .conftest import MakeEvaluation
from .factories import credit_events, reference_profile


class RegistryLoader:
    """Stands in for MLflow: version 2's reference is there to be fetched."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def load(self, model: str, version: str) -> tuple[dict[str, Any], dict[str, float], str]:
        self.asked.append((model, version))
        return reference_profile(n=2_000, seed=1), {"accuracy": 0.8}, f"models:/{model}/{version}"


async def test_a_new_versions_reference_is_fetched_without_stalling_the_others(
    make_evaluation: MakeEvaluation,
) -> None:
    # On SQLite, storing a fetched reference inside the profiling transaction (which holds
    # the write lock after profiling version 1's events) waited on itself: "database is
    # locked" on every pass, and no version was profiled any more.
    rng = np.random.default_rng(3)
    now = time.time()
    async with make_evaluation(profile_interval_s=3_600, monitor_interval_s=0) as evaluation:
        client = evaluation.client
        await client.put(
            "/v1/profiles/credit-risk/1",
            json={"profile": reference_profile(n=2_000), "metrics": {"accuracy": 0.8}},
        )
        old = credit_events(rng, 300, 0, now - 100)
        new = credit_events(rng, 300, 1_000, now - 100, version="2")
        await client.post("/v1/events", json=old + new)
        loader = RegistryLoader()
        evaluation.app.state.references._loader = loader

        started = time.monotonic()
        evaluation.app.state.profiler.run_once()
        assert time.monotonic() - started < 5, "profiling waited on a lock"
        assert loader.asked == [("credit-risk", "2")]
        for version in ("1", "2"):
            drift = await client.get(
                "/v1/drift", params={"model": "credit-risk", "version": version}
            )
            assert drift.status_code == 200, drift.text
            assert drift.json()["n_rows"] == 300, (version, drift.json()["n_rows"])
