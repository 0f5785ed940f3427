"""Registry URIs against a real MLflow server: aliases resolve to concrete versions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mlflow
import mlflow.sklearn
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from orchard_core.oip import decode_infer_response
from orchard_inference import MlflowModelSource

from .conftest import MakeRuntime
from .factories import CLOUDPICKLE, column_body, credit_frame, credit_pipeline, credit_signature

NAME = "inference-credit"


@pytest.fixture(scope="module")
def registry(mlflow_server: Any) -> Iterator[MlflowClient]:
    """Two registered versions of a credit model; ``champion`` points at version 1."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        client = MlflowClient(mlflow_server.url)
        mlflow.set_experiment("orchard-inference-tests")
        for seed in (0, 1):
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    credit_pipeline(seed),
                    name="model",
                    signature=credit_signature(),
                    registered_model_name=NAME,
                    pip_requirements=["scikit-learn"],
                    serialization_format=CLOUDPICKLE,
                )
        client.set_registered_model_alias(NAME, "champion", "1")
        yield client
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def tracking_env(registry: MlflowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime finds the registry the standard way, through MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)


def test_uris_resolve_to_registry_versions(registry: MlflowClient) -> None:
    source = MlflowModelSource(registry.tracking_uri)
    assert source.resolve(f"models:/{NAME}@champion").version == "1"
    assert source.resolve(f"models:/{NAME}/2").version == "2"
    assert source.resolve(f"models:/{NAME}/latest").version == "2"
    with pytest.raises(MlflowException, match=r"not found|RESOURCE_DOES_NOT_EXIST"):
        source.resolve(f"models:/{NAME}/9")
    with pytest.raises(ValueError, match="neither"):
        source.resolve(f"models:/{NAME}")


async def test_an_alias_is_served_as_its_concrete_version(
    make_runtime: MakeRuntime, tracking_env: None
) -> None:
    frame = credit_frame(6, seed=12)
    expected = {v: mlflow.sklearn.load_model(f"models:/{NAME}/{v}") for v in ("1", "2")}
    async with make_runtime({"credit-risk": f"models:/{NAME}@champion"}) as runtime:
        client = runtime.client
        assert (await client.get("/v2/health/ready")).status_code == 200
        reply = await client.post("/v2/models/credit-risk/infer", json=column_body(frame))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-orchard-model-version"] == "1"
        body = decode_infer_response(reply.content)
        assert body.model_version == "1"
        assert body.output("predict").data.tolist() == expected["1"].predict(frame).tolist()
        versioned = await client.post(
            "/v2/models/credit-risk/versions/1/infer", json=column_body(frame)
        )
        assert versioned.status_code == 200
        assert (await client.get("/v2/models/credit-risk/versions/2")).status_code == 404

        load = {"parameters": {"uri": f"models:/{NAME}/2"}}
        loaded = await client.post("/v2/repository/models/credit-risk/load", json=load)
        assert loaded.json()["version"] == "2"
        reply = await client.post("/v2/models/credit-risk/infer", json=column_body(frame))
        assert reply.headers["x-orchard-model-version"] == "2"
        proba = decode_infer_response(reply.content).output("predict_proba").data
        assert proba.tolist() == expected["2"].predict_proba(frame).tolist()


async def test_an_unknown_alias_fails_the_model_with_the_registry_reason(
    make_runtime: MakeRuntime, tracking_env: None
) -> None:
    async with make_runtime({"credit-risk": f"models:/{NAME}@nobody"}) as runtime:
        metadata = (await runtime.client.get("/v2/models/credit-risk")).json()
        assert metadata["state"] == "FAILED"
        assert "nobody" in metadata["reason"]
        reply = await runtime.client.post(
            "/v2/models/credit-risk/infer", json=column_body(credit_frame(1))
        )
        assert reply.status_code == 503
        # Without a body or configured URI, load falls back to the champion alias.
        loaded = await runtime.client.post("/v2/repository/models/inference-credit/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["uri"] == f"models:/{NAME}@champion"
        assert loaded.json()["version"] == "1"
