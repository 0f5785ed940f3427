"""KServe's own Python client against the real runtime process: the protocol compatibility proof.

The runtime runs as ``python -m orchard_inference`` on a free loopback port, serving the tests'
MLflow models; ``kserve.InferenceRESTClient`` (v2 and v1 configs) talks to it. kserve 0.21's
REST client has no model-metadata call, so metadata is read with plain HTTP and checked against
what the client needs to build its request.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

from .factories import (
    CreditModel,
    DigitsModel,
    credit_frame,
    digits_pixels,
    logits_of,
)

READY_DEADLINE_S = 90.0  # imports of torch and mlflow take seconds on a busy 2-core box


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(
    credit_model: CreditModel, digits_model: DigitsModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of a runtime process serving credit-risk (columns) and digits (tensor)."""
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_", "MLFLOW_"))
    }
    env.update(
        ORCHARD_INFERENCE_PORT=str(port),
        ORCHARD_INFERENCE_MODELS=json.dumps(
            {"digits": str(digits_model.path), "credit-risk": str(credit_model.path)}
        ),
    )
    log = tmp_path_factory.mktemp("kserve") / "runtime.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchard_inference"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert process.poll() is None, f"runtime exited early:\n{log.read_text()}"
                try:
                    if client.get(f"{base}/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
                time.sleep(0.1)  # polling interval, not a wait for an outcome
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def v2() -> AsyncIterator[InferenceRESTClient]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def v1() -> AsyncIterator[InferenceRESTClient]:
    client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=30))
    try:
        yield client
    finally:
        await client.close()


async def test_health_and_model_readiness(base_url: str, v2: InferenceRESTClient) -> None:
    assert await v2.is_server_live(base_url) is True
    assert await v2.is_server_ready(base_url) is True
    assert await v2.is_model_ready(base_url, "digits") is True
    assert await v2.is_model_ready(base_url, "credit-risk") is True
    assert await v2.is_model_ready(base_url, "nope") is False


async def test_model_metadata_describes_the_inputs_the_client_sends(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        digits = (await client.get("/v2/models/digits")).json()
        credit = (await client.get("/v2/models/credit-risk")).json()
    assert digits["name"] == "digits"
    assert digits["versions"] == ["1"]
    assert digits["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [(i["name"], i["datatype"]) for i in credit["inputs"]] == [
        ("age", "INT64"),
        ("income", "FP64"),
        ("purpose", "BYTES"),
    ]


async def test_infer_a_tensor_model(
    base_url: str, v2: InferenceRESTClient, digits_model: DigitsModel
) -> None:
    pixels = digits_pixels(5, seed=3)
    tensor = InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=False)
    request = InferRequest("digits", [tensor], request_id="kserve-1")

    response = await v2.infer(base_url, request, model_name="digits")

    assert response.model_name == "digits"
    assert response.id == "kserve-1"
    logits = response.get_output_by_name("logits")
    assert logits is not None
    assert logits.datatype == "FP32"
    np.testing.assert_allclose(
        logits.as_numpy(), logits_of(digits_model.network, pixels), rtol=1e-5, atol=1e-5
    )


def _credit_inputs(rows: int) -> list[InferInput]:
    frame = credit_frame(rows, seed=4)
    age = InferInput("age", [rows], "INT64")
    age.set_data_from_numpy(frame["age"].to_numpy(np.int64), binary_data=False)
    income = InferInput("income", [rows], "FP64")
    income.set_data_from_numpy(frame["income"].to_numpy(np.float64), binary_data=False)
    purpose = InferInput("purpose", [rows], "BYTES")
    purpose.set_data_from_numpy(frame["purpose"].to_numpy(np.object_), binary_data=False)
    return [age, income, purpose]


async def test_infer_a_column_model_with_bytes_fp64_and_int64_inputs(
    base_url: str, v2: InferenceRESTClient, credit_model: CreditModel
) -> None:
    request = InferRequest("credit-risk", _credit_inputs(6))

    response = await v2.infer(base_url, request, model_name="credit-risk")

    frame = credit_frame(6, seed=4)
    predict = response.get_output_by_name("predict")
    proba = response.get_output_by_name("predict_proba")
    assert predict is not None
    assert proba is not None
    np.testing.assert_array_equal(predict.as_numpy(), credit_model.pipeline.predict(frame))
    np.testing.assert_allclose(proba.as_numpy(), credit_model.pipeline.predict_proba(frame))


async def test_requested_outputs_are_the_only_ones_returned(
    base_url: str, v2: InferenceRESTClient, credit_model: CreditModel
) -> None:
    request = InferRequest(
        "credit-risk", _credit_inputs(3), request_outputs=[RequestedOutput("predict_proba")]
    )

    response = await v2.infer(base_url, request, model_name="credit-risk")

    assert [o.name for o in response.outputs] == ["predict_proba"]
    np.testing.assert_allclose(
        response.outputs[0].as_numpy(),
        credit_model.pipeline.predict_proba(credit_frame(3, seed=4)),
    )


async def test_an_error_reaches_the_client_with_our_message(
    base_url: str, v2: InferenceRESTClient
) -> None:
    tensor = InferInput("pixels", [1, 63], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 63), np.float32), binary_data=False)
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await v2.infer(base_url, InferRequest("digits", [tensor]), model_name="digits")
    assert raised.value.response.status_code == 400
    assert "expected shape [-1, 64]" in str(raised.value)


async def test_v1_predict_and_model_readiness(
    base_url: str, v1: InferenceRESTClient, digits_model: DigitsModel
) -> None:
    pixels = digits_pixels(2, seed=5)
    assert await v1.is_server_live(base_url) is True
    assert await v1.is_model_ready(base_url, "digits") is True

    response = await v1.infer(base_url, {"instances": pixels.tolist()}, model_name="digits")

    assert isinstance(response, dict)
    np.testing.assert_allclose(
        np.array(response["predictions"]),
        logits_of(digits_model.network, pixels),
        rtol=1e-5,
        atol=1e-5,
    )
