"""The evaluation service in the running platform: it finds what training registered."""

from __future__ import annotations

from typing import Any

import httpx
import mlflow
import pytest

pytestmark = pytest.mark.integration


def test_evaluation_reads_each_champions_reference_profile_from_mlflow(stack: Any) -> None:
    client = mlflow.MlflowClient(stack.mlflow)
    for model in ("credit-risk", "digits"):
        version = client.get_model_version_by_alias(model, "champion").version
        response = httpx.get(f"{stack.evaluation}/v1/profiles/{model}/{version}", timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"].startswith(f"models:/{model}/{version}/")
        assert body["profile"]["n_rows"] > 0
        assert body["metrics"]  # the holdout metrics training tagged the version with
    credit = httpx.get(f"{stack.evaluation}/v1/profiles", params={"model": "credit-risk"})
    assert "employment_type" in credit.json()["profiles"][0]["features"]
