"""Bad input through the gateway and straight to the runtime: a clear 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

_ROW = {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}

CASES: list[tuple[str, str, bytes | None, int, str]] = [
    # (id, path, body, status, words the message must contain)
    ("malformed-json", "/v2/models/digits/infer", b'{"inputs": [', 400, "not valid JSON"),
    ("empty-body", "/v2/models/digits/infer", b"", 400, "empty"),
    ("not-an-object", "/v2/models/digits/infer", b"[1, 2]", 400, "JSON object"),
    ("no-inputs", "/v2/models/digits/infer", b'{"inputs": []}', 400, "'inputs'"),
    (
        "length-mismatch",
        "/v2/models/digits/infer",
        b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [1, 2]}]}',
        400,
        "needs 64 elements",
    ),
    (
        "unknown-datatype",
        "/v2/models/digits/infer",
        b'{"inputs": [{"name": "pixels", "shape": [1], "datatype": "FLOAT", "data": [1]}]}',
        400,
        "unknown datatype",
    ),
    (
        "strings-for-numbers",
        "/v2/models/digits/infer",
        b'{"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP32", "data": ["a"]}]}',
        400,
        "needs numbers",
    ),
    ("unknown-model", "/v2/models/no-such-model/infer", None, 404, "no-such-model"),
    ("unknown-version", "/v2/models/digits/versions/999/infer", None, 404, "999"),
    ("v1-no-instances", "/v1/models/digits:predict", b'{"inputs": 1}', 400, "instances"),
]


@pytest.mark.parametrize("target", ["gateway", "runtime"])
@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_gets_a_clear_4xx(
    stack: Any, target: str, path: str, body: bytes | None, status: int, words: str
) -> None:
    base = stack.gateway if target == "gateway" else stack.runtime
    content = (
        body if body is not None else httpx.Request("POST", "/", json={"inputs": [_ROW]}).read()
    )
    response = httpx.post(
        f"{base}{path}", content=content, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message


@pytest.mark.parametrize("target", ["gateway", "runtime"])
def test_wrong_shape_for_the_model_is_a_400(stack: Any, target: str) -> None:
    base = stack.gateway if target == "gateway" else stack.runtime
    bad = {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": [0.0] * 63}]}
    response = httpx.post(f"{base}/v2/models/digits/infer", json=bad, timeout=30)
    assert response.status_code == 400
    assert "63" in response.json()["error"]


def test_missing_column_is_a_400_naming_it(stack: Any) -> None:
    partial = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [40]}]}
    response = httpx.post(f"{stack.gateway}/v2/models/credit-risk/infer", json=partial, timeout=30)
    assert response.status_code == 400
    assert "income" in response.json()["error"]
