"""Predictions through the gateway equal the registered model's own predictions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from orchard_core.oip import decode_infer_response
from orchard_pipelines.datasets import credit_risk

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(stack: Any) -> Iterator[mlflow.MlflowClient]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(stack.mlflow)
    try:
        yield mlflow.MlflowClient(stack.mlflow)
    finally:
        mlflow.set_tracking_uri(previous)


def _champion(registry: mlflow.MlflowClient, name: str) -> str:
    return str(registry.get_model_version_by_alias(name, "champion").version)


def _column_request(frame: pd.DataFrame) -> dict[str, Any]:
    inputs = []
    for column in credit_risk.FEATURES:
        values = frame[column]
        kind = values.dtype.kind
        datatype = "BYTES" if kind in "OUT" else "INT64" if kind in "iu" else "FP64"
        inputs.append(
            {"name": column, "shape": [len(frame)], "datatype": datatype, "data": values.tolist()}
        )
    return {"inputs": inputs}


def test_credit_risk_through_the_gateway_equals_the_models_predict(
    stack: Any, registry: mlflow.MlflowClient
) -> None:
    frame = credit_risk.generate(64, seed=2027)[list(credit_risk.FEATURES)]
    version = _champion(registry, "credit-risk")
    model = mlflow.sklearn.load_model(f"models:/credit-risk/{version}")

    response = httpx.post(
        f"{stack.gateway}/v2/models/credit-risk/infer",
        content=orjson.dumps(_column_request(frame)),
        headers={"Content-Type": "application/json", "X-Request-Id": "it-credit-1"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-orchard-model-version"] == version
    assert response.headers["x-request-id"] == "it-credit-1"
    body = decode_infer_response(response.content)
    assert body.model_name == "credit-risk"
    assert body.model_version == version
    predict = body.output("predict")
    assert predict.datatype == "INT64"
    assert predict.data.shape == (64,)
    np.testing.assert_array_equal(predict.data, model.predict(frame))
    proba = body.output("predict_proba")
    assert proba.datatype == "FP64"
    assert proba.data.shape == (64, 2)
    np.testing.assert_allclose(proba.data, model.predict_proba(frame), rtol=1e-12)


def test_credit_risk_v1_predict_through_the_gateway(
    stack: Any, registry: mlflow.MlflowClient
) -> None:
    frame = credit_risk.generate(8, seed=7)[list(credit_risk.FEATURES)]
    model = mlflow.sklearn.load_model(f"models:/credit-risk/{_champion(registry, 'credit-risk')}")
    instances = frame.to_dict(orient="records")
    response = httpx.post(
        f"{stack.gateway}/v1/models/credit-risk:predict", json={"instances": instances}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(frame).tolist()


def test_digits_through_the_gateway_equals_the_networks_output(
    stack: Any, registry: mlflow.MlflowClient
) -> None:
    pixels = load_digits().data[:40].astype(np.float32)
    version = _champion(registry, "digits")
    network = mlflow.pytorch.load_model(f"models:/digits/{version}", map_location="cpu")
    network.eval()
    with torch.inference_mode():
        expected = network(torch.from_numpy(pixels)).numpy()

    metadata = httpx.get(f"{stack.gateway}/v2/models/digits", timeout=10).json()
    (spec,) = metadata["inputs"]
    request = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": list(pixels.shape),
                "datatype": "FP32",
                "data": pixels.tolist(),
            }
        ]
    }
    response = httpx.post(f"{stack.gateway}/v2/models/digits/infer", json=request, timeout=30)
    assert response.status_code == 200, response.text
    body = decode_infer_response(response.content)
    assert body.model_version == version
    (output,) = body.outputs
    assert output.datatype == "FP32"
    assert output.data.shape == (40, 10)
    np.testing.assert_allclose(output.data, expected, rtol=1e-5, atol=1e-5)
    assert (output.data.argmax(axis=1) == load_digits().target[:40]).mean() > 0.8
