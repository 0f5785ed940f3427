"""KServe v1 endpoints: rows in, the model's primary output as predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from ..conftest import Runtime
from ..factories import CreditModel, DigitsModel, credit_frame, digits_pixels, logits_of


async def test_credit_rows_by_column_name(runtime: Runtime, credit_model: CreditModel) -> None:
    frame = credit_frame(12, seed=4)
    instances = frame.to_dict(orient="records")
    reply = await runtime.client.post(
        "/v1/models/credit-risk:predict", json={"instances": instances}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-orchard-model-version"] == "1"
    assert reply.json() == {"predictions": credit_model.pipeline.predict(frame).tolist()}


async def test_credit_rows_as_lists_in_signature_order(
    runtime: Runtime, credit_model: CreditModel
) -> None:
    frame = credit_frame(5, seed=8)
    instances = frame.to_numpy().tolist()
    reply = await runtime.client.post(
        "/v1/models/credit-risk:predict", json={"instances": instances}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == credit_model.pipeline.predict(frame).tolist()


async def test_digits_rows_as_nested_lists(runtime: Runtime, digits_model: DigitsModel) -> None:
    pixels = digits_pixels(3, seed=9)
    reply = await runtime.client.post(
        "/v1/models/digits:predict", json={"instances": pixels.tolist()}
    )
    assert reply.status_code == 200, reply.text
    predictions = np.array(reply.json()["predictions"], dtype=np.float32)
    np.testing.assert_allclose(predictions, logits_of(digits_model.network, pixels), rtol=1e-6)


async def test_model_readiness(runtime: Runtime) -> None:
    assert (await runtime.client.get("/v1/models/digits")).json() == {
        "name": "digits",
        "ready": True,
    }
    assert (await runtime.client.get("/v1/models")).json() == {"models": ["credit-risk", "digits"]}
    assert (await runtime.client.get("/v1/models/nope")).status_code == 404


ROW = {"age": 30, "income": 40_000.0, "purpose": "car"}


@pytest.mark.parametrize(
    ("model", "body", "status", "message"),
    [
        ("credit-risk", b"{", 400, "not valid JSON"),
        ("credit-risk", {"instances": []}, 400, "'instances' is required"),
        ("credit-risk", {"rows": [ROW]}, 400, "'instances' is required"),
        ("credit-risk", {"instances": [{"age": 30, "income": 1.0}]}, 400,
         "instances[0]: missing column 'purpose'"),
        ("credit-risk", {"instances": [{**ROW, "colour": "red"}]}, 400,
         "instances[0]: unknown column 'colour'"),
        ("credit-risk", {"instances": [[30, 1.0]]}, 400,
         "instances[0]: expected 3 values in column order (age, income, purpose), got 2"),
        ("credit-risk", {"instances": [{**ROW, "age": "thirty"}]}, 400,
         "column 'age': needs numbers (column type long), got strings"),
        ("credit-risk", {"instances": [{**ROW, "purpose": 3}]}, 400,
         "column 'purpose': needs strings (column type string), got integers"),
        ("credit-risk", {"instances": [7]}, 400, "instances[0]: a row is an object by column"),
        ("digits", {"instances": [[0.0] * 63]}, 400,
         "instances: expected shape [-1, 64], got [1, 63]"),
        ("digits", {"instances": [[0.0] * 64, [0.0]]}, 400, "instances: values are ragged"),
        ("nope", {"instances": [[1]]}, 404, "model 'nope' is not loaded here"),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_clear_4xx(
    runtime: Runtime, model: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = await runtime.client.post(f"/v1/models/{model}:predict", content=content)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]


async def test_a_null_in_a_double_column_reaches_the_model_as_nan(
    runtime: Runtime, credit_model: CreditModel
) -> None:
    # LogisticRegression cannot take NaN: the model's own failure is a 500 with its message.
    reply = await runtime.client.post(
        "/v1/models/credit-risk:predict", json={"instances": [{**ROW, "income": None}]}
    )
    assert reply.status_code == 500
    assert "NaN" in reply.json()["error"]
    assert "Traceback" not in reply.text
    assert (
        runtime.metric(
            "orchard_inference_model_requests_total",
            model="credit-risk",
            version="1",
            outcome="error",
        )
        == 1
    )
