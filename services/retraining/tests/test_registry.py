"""Rollouts against a real MLflow server: the aliases follow promotions and rollbacks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orchard_retraining.registry import ModelRegistry

from .test_controller import Env, EvaluationStub, env, evaluation, step  # noqa: F401

pytestmark = pytest.mark.integration


def register_versions(tracking_uri: str, model: str, tmp_path: Path, count: int) -> list[str]:
    """Register ``count`` versions of a tiny model (one logged artifact each)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.create_experiment(f"registry-test-{uuid.uuid4().hex[:8]}")
    client.create_registered_model(model)
    weights = tmp_path / "model" / "weights.txt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    versions = []
    for index in range(count):
        run = client.create_run(experiment)
        weights.write_text(f"coefficients {index}\n")
        client.log_artifacts(run.info.run_id, str(weights.parent), "model")
        client.set_terminated(run.info.run_id)
        source = f"{run.info.artifact_uri}/model"
        made = client.create_model_version(model, source, run_id=run.info.run_id)
        versions.append(str(made.version))
    return versions


async def test_promotion_and_rollback_move_the_aliases(
    env: Env,  # noqa: F811
    mlflow_server: object,
    tmp_path: Path,
) -> None:
    uri = mlflow_server.url  # type: ignore[attr-defined]
    model = f"credit-{uuid.uuid4().hex[:8]}"
    one, two = register_versions(uri, model, tmp_path, 2)
    registry = ModelRegistry(uri)
    registry.set_alias(model, "champion", one)
    spec = {"model": model, "candidate_version": two, "steps": [10, 100],
            "step_interval_s": 0.2, "max_wait_s": 60, "min_samples": 10}  # fmt: skip

    async with env.start(mlflow_tracking_uri=uri, models=f'["{model}"]') as running:
        started = await running.client.post("/v1/rollouts", json=spec)
        assert started.status_code == 201, started.text
        assert started.json()["spec"]["champion_version"] == one  # from the alias
        assert registry.alias_version(model, "challenger") == two

        # Evaluation down: paused, weights held; back up: the rollout resumes.
        env.evaluation.answer = (503, {"error": "restarting"})
        await step(running, env.clock)
        rollout = started.json()["id"]
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert (body["status"], body["state"]["candidate_weight"]) == ("paused", 10)
        env.evaluation.compare("PASS", samples=50)
        await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "promoted"
        assert body["pending_actions"] == [] or body["pending_actions"][0]["type"] == "retire"
        assert registry.alias_version(model, "champion") == two
        assert registry.alias_version(model, "challenger") is None

        # The next candidate fails: the champion stays, the challenger goes.
        env.evaluation.compare("FAIL", samples=50)
        again = await running.client.post("/v1/rollouts", json={**spec, "candidate_version": one})
        assert again.status_code == 201, again.text
        assert registry.alias_version(model, "challenger") == one
        await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{again.json()['id']}")).json()
        assert body["status"] == "rolled_back"
        assert registry.alias_version(model, "champion") == two
        assert registry.alias_version(model, "challenger") is None
        table = (await running.client.get("/v1/routes")).json()
        assert [v["version"] for v in table["models"][model]["versions"]] == [two]
