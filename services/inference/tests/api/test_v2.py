"""OIP v2 endpoints against real sklearn and PyTorch MLflow models served from disk."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from orchard_core.oip import decode_infer_response

from ..conftest import Runtime
from ..factories import (
    CreditModel,
    DigitsModel,
    column_body,
    credit_frame,
    digits_pixels,
    logits_of,
    tensor_body,
)

VERSION_HEADER = "x-orchard-model-version"


async def test_server_health_and_metadata(runtime: Runtime) -> None:
    client = runtime.client
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get("/readyz")).status_code == 200
    server = (await client.get("/v2")).json()
    assert server["name"] == "orchard-inference"
    assert server["version"]
    assert "model_repository" in server["extensions"]
    assert (await client.get("/v2/models")).json() == {"models": ["credit-risk", "digits"]}


@pytest.mark.parametrize("path", ["/v2/models/credit-risk", "/v2/models/credit-risk/versions/1"])
async def test_column_model_metadata_comes_from_the_signature(runtime: Runtime, path: str) -> None:
    reply = await runtime.client.get(path)
    assert reply.status_code == 200
    assert reply.json() == {
        "name": "credit-risk",
        "versions": ["1"],
        "platform": "sklearn",
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [-1]},
            {"name": "income", "datatype": "FP64", "shape": [-1]},
            {"name": "purpose", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
        "state": "READY",
    }


async def test_tensor_model_metadata_names_the_input_from_the_mlmodel(runtime: Runtime) -> None:
    body = (await runtime.client.get("/v2/models/digits/versions/1")).json()
    assert body["platform"] == "pytorch"
    assert body["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert body["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("path", ["/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"])
async def test_model_ready(runtime: Runtime, path: str) -> None:
    reply = await runtime.client.get(path)
    assert reply.status_code == 200
    assert reply.json() == {"name": "digits", "version": "1", "ready": True}


@pytest.mark.parametrize(
    "path", ["/v2/models/credit-risk/infer", "/v2/models/credit-risk/versions/1/infer"]
)
@pytest.mark.parametrize("two_d", [False, True])
async def test_credit_risk_predictions_equal_the_pipelines_own(
    runtime: Runtime, credit_model: CreditModel, path: str, two_d: bool
) -> None:
    frame = credit_frame(25, seed=11)
    reply = await runtime.client.post(path, json=column_body(frame, two_d=two_d, id="req-1"))
    assert reply.status_code == 200, reply.text
    assert reply.headers[VERSION_HEADER] == "1"
    body = decode_infer_response(reply.content)
    assert (body.model_name, body.model_version, body.id) == ("credit-risk", "1", "req-1")
    assert [t.name for t in body.outputs] == ["predict", "predict_proba"]
    predict, proba = body.outputs
    assert predict.datatype == "INT64"
    assert predict.shape == (25,)
    np.testing.assert_array_equal(predict.data, credit_model.pipeline.predict(frame))
    assert proba.datatype == "FP64"
    assert proba.shape == (25, 2)
    np.testing.assert_allclose(proba.data, credit_model.pipeline.predict_proba(frame), rtol=1e-12)


async def test_numbers_of_another_width_are_accepted_for_numeric_columns(
    runtime: Runtime, credit_model: CreditModel
) -> None:
    frame = credit_frame(4, seed=3)
    body = column_body(frame)
    body["inputs"][0]["datatype"] = "INT32"  # age: long in the signature
    body["inputs"][1]["datatype"] = "FP32"  # income: double in the signature
    body["inputs"][1]["data"] = [float(np.float32(x)) for x in frame["income"]]
    reply = await runtime.client.post("/v2/models/credit-risk/infer", json=body)
    assert reply.status_code == 200, reply.text
    expected = frame.assign(income=frame["income"].astype(np.float32).astype(np.float64))
    predict = decode_infer_response(reply.content).output("predict")
    np.testing.assert_array_equal(predict.data, credit_model.pipeline.predict(expected))


async def test_requested_outputs_filter_the_response(runtime: Runtime) -> None:
    body = column_body(credit_frame(3), outputs=[{"name": "predict_proba"}])
    reply = await runtime.client.post("/v2/models/credit-risk/infer", json=body)
    assert reply.status_code == 200, reply.text
    assert [o["name"] for o in reply.json()["outputs"]] == ["predict_proba"]


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v2/models/digits/versions/1/infer"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
async def test_digits_logits_equal_the_networks_forward(
    runtime: Runtime, digits_model: DigitsModel, path: str, datatype: str
) -> None:
    pixels = digits_pixels(16, seed=5)
    reply = await runtime.client.post(path, json=tensor_body(pixels, datatype=datatype))
    assert reply.status_code == 200, reply.text
    assert reply.headers[VERSION_HEADER] == "1"
    (logits,) = decode_infer_response(reply.content).outputs
    assert (logits.name, logits.datatype, logits.shape) == ("logits", "FP32", (16, 10))
    np.testing.assert_allclose(logits.data, logits_of(digits_model.network, pixels), rtol=1e-6)


async def test_integer_pixels_are_cast_to_the_signature_dtype(
    runtime: Runtime, digits_model: DigitsModel
) -> None:
    pixels = np.arange(2 * 64).reshape(2, 64) % 17
    reply = await runtime.client.post(
        "/v2/models/digits/infer", json=tensor_body(pixels, datatype="INT64")
    )
    assert reply.status_code == 200, reply.text
    (logits,) = decode_infer_response(reply.content).outputs
    expected = logits_of(digits_model.network, pixels.astype(np.float32))
    np.testing.assert_allclose(logits.data, expected, rtol=1e-6)


def _credit(**change: Any) -> dict[str, Any]:
    body = column_body(credit_frame(2))
    for name, fields in change.items():
        for tensor in body["inputs"]:
            if tensor["name"] == name:
                tensor.update(fields)
    return body


BAD_REQUESTS = [
    pytest.param("credit-risk", b"{not json", 400, "not valid JSON", id="malformed-json"),
    pytest.param("credit-risk", b"", 400, "request body is empty", id="empty-body"),
    pytest.param("credit-risk", b"[]", 400, "must be a JSON object", id="not-an-object"),
    pytest.param("credit-risk", {"inputs": []}, 400, "'inputs' is required", id="no-inputs"),
    pytest.param(
        "credit-risk",
        _credit(purpose={"datatype": "FP64", "data": [1.0, 2.0]}),
        400,
        "input 'purpose': needs strings (column type string), got fractional numbers",
        id="numbers-for-a-string-column",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"datatype": "BYTES", "data": ["a", "b"]}),
        400,
        "input 'age': needs numbers (column type long), got strings",
        id="strings-for-a-numeric-column",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"datatype": "FP64", "data": [30.5, 40.0]}),
        400,
        "input 'age': needs integers (column type long), got fractional numbers",
        id="fractions-for-an-integer-column",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"data": [30]}),
        400,
        "input 'age': shape [2] needs 2 elements, but 'data' has 1",
        id="data-length-mismatch",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"shape": [1], "data": [30]}),
        400,
        "input 'income' has 2 rows but input 'age' has 1",
        id="columns-of-different-lengths",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"shape": [1, 2]}),
        400,
        "input 'age': a column input has shape [n] or [n, 1], got [1, 2]",
        id="column-of-wrong-shape",
    ),
    pytest.param(
        "credit-risk",
        {"inputs": column_body(credit_frame(2))["inputs"][1:]},
        400,
        "missing input 'age'; the model needs the columns: age, income, purpose",
        id="missing-column",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"name": "agee"}),
        400,
        "unknown input 'agee'; the model's columns are: age, income, purpose",
        id="unknown-column",
    ),
    pytest.param(
        "credit-risk",
        _credit(age={"datatype": "FP128"}),
        400,
        "input 'age': unknown datatype 'FP128'",
        id="unknown-datatype",
    ),
    pytest.param(
        "credit-risk",
        column_body(credit_frame(2), outputs=[{"name": "proba"}]),
        400,
        "unknown output 'proba'; the model's outputs are: predict, predict_proba",
        id="unknown-output",
    ),
    pytest.param(
        "digits",
        tensor_body(np.zeros((1, 63), dtype=np.float32)),
        400,
        "input 'pixels': expected shape [-1, 64], got [1, 63]",
        id="wrong-trailing-shape",
    ),
    pytest.param(
        "digits",
        tensor_body(np.zeros(64, dtype=np.float32)),
        400,
        "input 'pixels': expected shape [-1, 64], got [64]",
        id="wrong-rank",
    ),
    pytest.param(
        "digits",
        {"inputs": [{"name": "pixels", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]},
        400,
        "input 'pixels': expected shape [-1, 64], got [1, 2]",
        id="strings-of-wrong-shape",
    ),
    pytest.param(
        "digits",
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "BYTES", "data": ["a"] * 64}]},
        400,
        "input 'pixels': needs numbers (FP32), got strings",
        id="strings-for-a-tensor",
    ),
    pytest.param(
        "digits",
        {
            "inputs": [
                tensor_body(np.zeros((1, 64)))["inputs"][0],
                {**tensor_body(np.zeros((1, 64)))["inputs"][0], "name": "more"},
            ]
        },
        400,
        "the model takes one input ('pixels'), got 2",
        id="too-many-inputs",
    ),
]


@pytest.mark.parametrize(("model", "body", "status", "message"), BAD_REQUESTS)
async def test_bad_requests_get_a_clear_4xx(
    runtime: Runtime, model: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = await runtime.client.post(
        f"/v2/models/{model}/infer",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert (
        runtime.metric(
            "orchard_inference_model_requests_total",
            model=model,
            version="1",
            outcome="invalid_input",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/v2/models/nope/infer", "model 'nope' is not loaded here"),
        ("POST", "/v2/models/digits/versions/7/infer", "model 'digits' has no version '7'"),
        ("GET", "/v2/models/nope", "model 'nope' is not loaded here"),
        ("GET", "/v2/models/digits/versions/7", "model 'digits' has no version '7'"),
        ("GET", "/v2/models/nope/ready", "model 'nope' is not loaded here"),
        ("GET", "/v2/models/digits/versions/7/ready", "has no version '7' (versions: 1)"),
    ],
)
async def test_unknown_models_and_versions_are_404(
    runtime: Runtime, method: str, path: str, message: str
) -> None:
    body = orjson.dumps(tensor_body(digits_pixels(1)))
    reply = await runtime.client.request(method, path, content=body if method == "POST" else None)
    assert reply.status_code == 404
    assert message in reply.json()["error"]


async def test_request_metrics_are_counted_per_model_version(runtime: Runtime) -> None:
    for _ in range(3):
        reply = await runtime.client.post(
            "/v2/models/digits/infer", json=tensor_body(digits_pixels(2))
        )
        assert reply.status_code == 200
    labels = {"model": "digits", "version": "1"}
    assert (
        runtime.metric("orchard_inference_model_requests_total", outcome="success", **labels) == 3
    )
    assert runtime.metric("orchard_inference_model_inference_seconds_count", **labels) == 3
    # prometheus_client's Enum puts the state in a label named like the metric.
    state = {"orchard_inference_model_state": "READY"}
    assert runtime.metric("orchard_inference_model_state", **state, **labels) == 1
    assert runtime.metric("orchard_inference_model_load_seconds", **labels) > 0
    exposition = (await runtime.client.get("/metrics")).text
    assert 'orchard_inference_model_requests_total{model="digits",outcome="success"' in exposition
