"""KServe's own Python client against the gateway (in front of the real runtime and models)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from orchard_pipelines.datasets import credit_risk

pytestmark = pytest.mark.integration


@pytest.fixture
async def v2() -> AsyncIterator[InferenceRESTClient]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        yield client
    finally:
        await client.close()


def _inputs(frame: pd.DataFrame) -> list[InferInput]:
    inputs = []
    for column in credit_risk.FEATURES:
        values = frame[column]
        kind = values.dtype.kind
        datatype = "BYTES" if kind in "OUT" else "INT64" if kind in "iu" else "FP64"
        tensor = InferInput(column, [len(frame)], datatype)
        array = values.to_numpy(np.object_ if datatype == "BYTES" else None)
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    return inputs


async def test_health_and_readiness_through_the_gateway(
    stack: Any, v2: InferenceRESTClient
) -> None:
    assert await v2.is_server_live(stack.gateway) is True
    assert await v2.is_server_ready(stack.gateway) is True
    assert await v2.is_model_ready(stack.gateway, "credit-risk") is True
    assert await v2.is_model_ready(stack.gateway, "no-such-model") is False


async def test_kserve_client_infers_through_the_gateway(
    stack: Any, v2: InferenceRESTClient, credit_model: Any
) -> None:
    frame = credit_risk.generate(7, seed=31)[list(credit_risk.FEATURES)]
    request = InferRequest("credit-risk", _inputs(frame), request_id="kserve-gw-1")

    response = await v2.infer(stack.gateway, request, model_name="credit-risk")

    assert response.model_name == "credit-risk"
    assert response.id == "kserve-gw-1"
    predict = response.get_output_by_name("predict")
    proba = response.get_output_by_name("predict_proba")
    assert predict is not None
    assert proba is not None
    np.testing.assert_array_equal(predict.as_numpy(), credit_model.predict(frame))
    np.testing.assert_allclose(proba.as_numpy(), credit_model.predict_proba(frame), rtol=1e-12)


async def test_the_gateways_400_reaches_the_kserve_client(
    stack: Any, v2: InferenceRESTClient
) -> None:
    tensor = InferInput("age", [2], "INT64")
    tensor.set_data_from_numpy(np.array([30, 40], np.int64), binary_data=False)
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await v2.infer(
            stack.gateway, InferRequest("credit-risk", [tensor]), model_name="credit-risk"
        )
    assert raised.value.response.status_code == 400
    assert "income" in raised.value.response.json()["error"]


async def test_kserve_v1_client_predicts_through_the_gateway(stack: Any, credit_model: Any) -> None:
    frame = credit_risk.generate(4, seed=32)[list(credit_risk.FEATURES)]
    client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=30))
    try:
        response = await client.infer(
            stack.gateway,
            {"instances": frame.to_dict(orient="records")},
            model_name="credit-risk",
        )
    finally:
        await client.close()
    assert response["predictions"] == credit_model.predict(frame).tolist()
