"""The gateway's OIP request check accepts and refuses exactly what the decoder does."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchard_core.errors import InvalidInput
from orchard_core.oip import decode_infer_request
from orchard_core.oip.datatypes import NUMPY_DTYPE
from orchard_gateway.oip_check import FLOAT_MAX, INTEGER_RANGES, infer_parameters

from .factories import infer_payload
from .oip_strategies import encode, json_values, oip_requests, valid_tensors

EXAMPLES = settings(
    max_examples=600,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _outcome(check: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", check(body)
    except InvalidInput as exc:
        return type(exc).__name__, exc.message


def _decoded(body: bytes) -> dict[str, Any] | None:
    return decode_infer_request(body).parameters


def assert_same(body: bytes) -> None:
    assert _outcome(infer_parameters, body) == _outcome(_decoded, body), body[:300]


@EXAMPLES
@given(request=oip_requests)
def test_any_request_gets_the_decoders_answer(request: dict[str, Any]) -> None:
    assert_same(encode(request))


@EXAMPLES
@given(
    tensors=st.lists(valid_tensors(), min_size=1, max_size=3),
    parameters=st.none() | st.dictionaries(st.text(max_size=4), json_values, max_size=2),
)
def test_valid_requests_keep_their_parameters(
    tensors: list[dict[str, Any]], parameters: dict[str, Any] | None
) -> None:
    body = encode({"inputs": tensors, "parameters": parameters})
    assert_same(body)


@EXAMPLES
@given(body=st.binary(max_size=40) | json_values.map(encode))
def test_any_body_gets_the_decoders_answer(body: bytes) -> None:
    assert_same(body)


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP16", [65504, 65504.0, -65504]),
        ("FP16", [65505, 1.0, 1.0]),
        ("FP16", [65519.0, 1.0, 1.0]),
        ("FP32", [3.4028234663852886e38, 1, 2]),
        ("FP32", [3.5e38, 1, 2]),
        ("FP64", [2**63 - 1, -(2**63), 1.5]),
        ("FP64", [2**63, 1.0, 2.0]),
        ("FP64", [True, 1.0, 2.0]),
        ("INT8", [127, -128, 0]),
        ("INT8", [128, 0, 0]),
        ("UINT64", [2**64 - 1, 0, 1]),
        ("UINT64", [2**63, 1, 2]),
        ("UINT8", [-1, 0, 1]),
        ("INT64", [1, 2.0, 3]),
        ("BOOL", [True, False, 1]),
        ("BYTES", ["a", "b", 1]),
        ("BYTES", ["a", "b", "c"]),
        ("FP32", [[1.0], [2.0], [3.0]]),
        ("FP32", 1.0),
    ],
)
def test_edges_of_each_datatype(datatype: str, data: Any) -> None:
    shape = [3] if isinstance(data, list) else [1]
    assert_same(encode(infer_payload(shape=shape, datatype=datatype, data=data)))


def test_a_long_tensor_goes_to_the_decoder() -> None:
    data = [float(i) for i in range(5000)]
    payload = {**infer_payload(shape=[5000], data=data), "parameters": {"unit": "u"}}
    assert infer_parameters(orjson.dumps(payload)) == {"unit": "u"}
    assert_same(orjson.dumps({**payload, "inputs": [{**payload["inputs"][0], "shape": [1]}]}))


def test_the_limits_are_numpys() -> None:
    int64 = np.iinfo(np.int64)
    for datatype, (low, high) in INTEGER_RANGES.items():
        info = np.iinfo(NUMPY_DTYPE[datatype])
        assert (low, high) == (
            max(int(info.min), int(int64.min)),
            min(int(info.max), int(int64.max)),
        )
    for datatype, limit in FLOAT_MAX.items():
        assert limit == float(np.finfo(NUMPY_DTYPE[datatype]).max)
