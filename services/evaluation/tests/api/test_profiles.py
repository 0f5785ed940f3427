"""Reference profiles: registered by API, fetched from a real MLflow registry, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Evaluation, MakeEvaluation
from ..factories import reference_profile


async def test_a_profile_put_by_api_is_listed_and_read_back(evaluation: Evaluation) -> None:
    profile = reference_profile()
    put = await evaluation.client.put(
        "/v1/profiles/credit-risk/3", json={"profile": profile, "metrics": {"accuracy": 0.81}}
    )
    assert put.status_code == 201
    assert put.json()["features"] == ["age", "employment_type", "income"]
    listed = (await evaluation.client.get("/v1/profiles")).json()["profiles"]
    assert [(p["model"], p["version"], p["metrics"]) for p in listed] == [
        ("credit-risk", "3", {"accuracy": 0.81})
    ]
    read = (await evaluation.client.get("/v1/profiles/credit-risk/3")).json()
    assert read["profile"]["features"]["age"] == profile["features"]["age"]


async def test_bad_profiles_are_400_and_unknown_ones_404(evaluation: Evaluation) -> None:
    missing = await evaluation.client.get("/v1/profiles/credit-risk/9")
    assert missing.status_code == 404
    assert "PUT" in missing.json()["error"]
    bad_bodies: list[Any] = [
        {"profile": {"schema": "something/else"}},
        {"profile": {"schema": "orchard.reference_profile/v2"}},
        {"profile": reference_profile(), "metrics": {"accuracy": "high"}},
        {"profile": reference_profile(), "extra": 1},
        {"nothing": True},
        [1, 2],
    ]
    for body in bad_bodies:
        response = await evaluation.client.put("/v1/profiles/m/1", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    not_json = await evaluation.client.put(
        "/v1/profiles/m/1", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert (await evaluation.client.get("/v1/profiles")).json()["profiles"] == []


def _register(tracking_uri: str, name: str, profile: dict[str, Any], tmp: Path) -> str:
    """Register a version the way training does: the profile beside the model files and the
    holdout metrics as version tags."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment(f"profiles-{name}")
    run = client.create_run(experiment)
    model_dir = tmp / "model"
    model_dir.mkdir()
    (model_dir / "reference_profile.json").write_text(json.dumps(profile))
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={"accuracy": "0.83", "orchard.dataset": "credit-risk"},
    )
    return str(version.version)


@pytest.mark.integration
async def test_a_profile_is_fetched_from_mlflow_the_first_time_it_is_needed(
    make_evaluation: MakeEvaluation, mlflow_server: Any, tmp_path: Path
) -> None:
    profile = reference_profile(seed=4)
    version = _register(mlflow_server.url, "fetched-model", profile, tmp_path)
    async with make_evaluation(mlflow_tracking_uri=mlflow_server.url) as evaluation:
        response = await evaluation.client.get(f"/v1/profiles/fetched-model/{version}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == f"models:/fetched-model/{version}/reference_profile.json"
        assert body["metrics"] == {"accuracy": 0.83}  # numeric tags only
        assert body["profile"]["features"]["income"] == profile["features"]["income"]
        # An unknown version is a 404 (and MLflow is not asked again at once).
        assert (await evaluation.client.get("/v1/profiles/fetched-model/99")).status_code == 404
    # Kept in evaluation's own database: found again with MLflow out of the picture.
    async with make_evaluation() as evaluation:
        again = await evaluation.client.get(f"/v1/profiles/fetched-model/{version}")
        assert again.status_code == 200
