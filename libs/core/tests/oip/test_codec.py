"""The OIP v2 codec: what reaches the model, and the 400 a client sees for bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchard_core.errors import InvalidInput
from orchard_core.oip import (
    NUMPY_DTYPE,
    InferTensor,
    decode_infer_request,
    decode_infer_response,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
)


def _request(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _tensor(name: str = "x", shape: Any = (2,), datatype: Any = "FP32", data: Any = (1, 2)) -> dict:
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}


def test_decodes_several_inputs_with_their_dtypes_and_shapes() -> None:
    request = decode_infer_request(
        _request(
            _tensor("a", (2, 2), "FP32", [[1.5, 2], [3, 4]]),
            _tensor("b", (3,), "INT64", [1, 2, 3]),
            _tensor("c", (2,), "BYTES", ["x", "y"]),
            _tensor("d", (1, 2), "BOOL", [True, False]),
            id="req-1",
            parameters={"p": 1},
            outputs=[{"name": "predict"}],
        )
    )
    a, b, c, d = request.inputs
    assert a.data.dtype == np.float32
    assert a.data.shape == (2, 2)
    assert a.data.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert b.data.dtype == np.int64
    assert b.shape == (3,)
    assert c.data.tolist() == ["x", "y"]
    assert d.data.dtype == np.bool_
    assert d.shape == (1, 2)
    assert request.id == "req-1"
    assert request.parameters == {"p": 1}
    assert request.outputs is not None
    assert request.outputs[0].name == "predict"
    assert request.input("b") is b
    assert request.input("zz") is None


def test_flat_and_nested_data_give_the_same_row_major_tensor() -> None:
    flat = decode_infer_request(_request(_tensor("x", (2, 3), "FP64", [1, 2, 3, 4, 5, 6])))
    nested = decode_infer_request(_request(_tensor("x", (2, 3), "FP64", [[1, 2, 3], [4, 5, 6]])))
    np.testing.assert_array_equal(flat.inputs[0].data, nested.inputs[0].data)
    assert flat.inputs[0].data[1, 0] == 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is empty"),
        (b"   ", "request body is empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "'inputs' is required"),
        (b'{"inputs": []}', "'inputs' is required and must be a non-empty list"),
        (b'{"inputs": [5]}', "inputs[0]: must be a JSON object"),
        (
            _request({"shape": [1], "datatype": "FP32", "data": [1]}),
            "inputs[0]: 'name' is required",
        ),
        (
            _request({"name": "x", "datatype": "FP32", "data": [1]}),
            "input 'x': 'shape' is required",
        ),
        (_request({"name": "x", "shape": [1], "data": [1]}), "input 'x': 'datatype' is required"),
        (
            _request({"name": "x", "shape": [1], "datatype": "FP32"}),
            "input 'x': 'data' is required",
        ),
        (_request(_tensor(datatype="FLOAT")), "input 'x': unknown datatype 'FLOAT'"),
        (_request(_tensor(shape=(3,))), "input 'x': shape [3] needs 3 elements, but 'data' has 2"),
        (_request(_tensor(shape=(2, 2))), "shape [2, 2] needs 4 elements"),
        (_request(_tensor(shape=(-1,))), "'shape' must be a list of non-negative integers"),
        (_request({**_tensor(), "shape": "2"}), "'shape' must be a list"),
        (_request(_tensor(shape=(2,), data=[[1], [2, 3]])), "nested 'data' is ragged"),
        (_request(_tensor(data=["a", "b"])), "datatype FP32 needs numbers, got strings"),
        (_request(_tensor(data=[1, None])), "needs numbers, got null"),
        (_request(_tensor(data=[True, False])), "needs numbers, got true/false"),
        (
            _request(_tensor(datatype="INT32", data=[1.5, 2])),
            "INT32 needs integers, got fractional numbers",
        ),
        (_request(_tensor(datatype="UINT8", data=[1, 256])), "out of range for UINT8 [0, 255]"),
        (_request(_tensor(datatype="UINT8", data=[-1, 2])), "out of range for UINT8"),
        (_request(_tensor(datatype="FP16", data=[1e6, 1])), "out of range for FP16"),
        (_request(_tensor(datatype="BOOL", data=[1, 0])), "BOOL needs true/false"),
        (_request(_tensor(datatype="BYTES", data=["a", 3])), "BYTES needs strings, got int"),
        (_request(_tensor("x"), _tensor("x")), "input names must be unique"),
        (_request(_tensor(), id=7), "'id' must be a string"),
        (_request(_tensor(), outputs="predict"), "'outputs' must be a list"),
        (_request(_tensor(), outputs=[{"nm": 1}]), "outputs[0]: must be an object"),
        (
            _request({**_tensor(), "parameters": [1]}),
            "input 'x': 'parameters' must be a JSON object",
        ),
    ],
)
def test_bad_requests_get_a_precise_message(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(body)
    assert message in str(info.value)


def test_a_scalar_data_value_is_a_one_element_tensor() -> None:
    request = decode_infer_request(_request(_tensor(shape=(1,), data=[3.0])))
    assert request.inputs[0].data.tolist() == [3.0]
    scalar = decode_infer_request(_request({**_tensor(shape=(1,)), "data": 3.0}))
    assert scalar.inputs[0].data.tolist() == [3.0]


def test_empty_tensor_is_accepted_for_any_datatype() -> None:
    request = decode_infer_request(_request(_tensor(shape=(0, 4), datatype="INT16", data=[])))
    assert request.inputs[0].data.shape == (0, 4)
    assert request.inputs[0].data.dtype == np.int16


def test_integers_are_accepted_for_float_datatypes() -> None:
    request = decode_infer_request(_request(_tensor(datatype="FP64", data=[1, 2])))
    assert request.inputs[0].data.dtype == np.float64


_NUMERIC = [name for name in NUMPY_DTYPE if name not in ("BYTES", "BOOL")]


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from([*_NUMERIC, "BOOL", "BYTES"]))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    size = math.prod(shape)
    dtype = NUMPY_DTYPE[datatype]
    if datatype == "BYTES":
        values: list[Any] = draw(st.lists(st.text(max_size=5), min_size=size, max_size=size))
    elif datatype == "BOOL":
        values = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = draw(
            st.lists(st.integers(int(info.min), int(info.max)), min_size=size, max_size=size)
        )
    else:
        width = 16 if datatype == "FP16" else 32 if datatype == "FP32" else 64
        values = draw(
            st.lists(
                st.floats(width=width, allow_nan=False, allow_infinity=False),
                min_size=size,
                max_size=size,
            )
        )
    return datatype, np.array(values, dtype=dtype).reshape(shape)


@given(_tensors())
def test_encode_then_decode_round_trips_every_datatype(case: tuple[str, np.ndarray]) -> None:
    datatype, array = case
    body = encode_infer_response(
        model_name="m", model_version="3", outputs=[InferTensor("y", datatype, array)]
    )
    response = decode_infer_response(body)
    out = response.output("y")
    assert response.model_name == "m"
    assert response.model_version == "3"
    assert out.datatype == datatype
    assert out.data.shape == array.shape
    assert out.data.dtype == array.dtype
    assert out.data.tolist() == array.tolist()
    # And the same tensor, sent as a request, decodes to the same array.
    request = decode_infer_request(
        _request({"name": "x", "shape": list(array.shape), "datatype": datatype,
                  "data": orjson.loads(body)["outputs"][0]["data"]})
    )  # fmt: skip
    assert request.inputs[0].data.tolist() == array.tolist()


def test_response_has_the_oip_fields_and_datatype_follows_dtype() -> None:
    outputs = [
        InferTensor.of("predict", np.array([0, 1], dtype=np.int64)),
        InferTensor.of("predict_proba", np.array([[0.9, 0.1], [0.2, 0.8]])),
        InferTensor.of("label", np.array(["no", "yes"], dtype=object)),
    ]
    body = orjson.loads(
        encode_infer_response(model_name="m", model_version="1", outputs=outputs, request_id="r")
    )
    assert body["id"] == "r"
    assert [o["datatype"] for o in body["outputs"]] == ["INT64", "FP64", "BYTES"]
    assert body["outputs"][1] == {
        "name": "predict_proba",
        "datatype": "FP64",
        "shape": [2, 2],
        "data": [0.9, 0.1, 0.2, 0.8],
    }


def test_v1_request_and_response() -> None:
    assert decode_v1_request(b'{"instances": [[1, 2], [3, 4]]}') == [[1, 2], [3, 4]]
    with pytest.raises(InvalidInput, match="'instances' is required"):
        decode_v1_request(b'{"inputs": [1]}')
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_v1_request(b"{")
    assert orjson.loads(encode_v1_response(np.array([1, 0]))) == {"predictions": [1, 0]}


def test_uint64_values_above_int64_mix_with_small_ones() -> None:
    # numpy infers float64 for [0, 2**63]; the codec must keep them exact integers.
    request = decode_infer_request(
        _request(_tensor(shape=(2,), datatype="UINT64", data=[0, 2**63]))
    )
    assert request.inputs[0].data.dtype == np.uint64
    assert request.inputs[0].data.tolist() == [0, 2**63]
    with pytest.raises(InvalidInput, match="out of range for INT64"):
        decode_infer_request(_request(_tensor(shape=(2,), datatype="INT64", data=[0, 2**63])))
