"""Hypothesis strategies for the gateway's bad-input properties: OIP v2 tensors, near-valid
requests, JSON values and HTTP headers."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from orchard_core.oip.datatypes import DATATYPES, NUMPY_DTYPE

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: beyond 64 bits too
    st.floats(),  # NaN and infinities become NaN/Infinity tokens, which are not JSON
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
numbers = st.one_of(
    st.integers(min_value=-300, max_value=300),
    st.integers(),
    st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False),
    st.sampled_from([1e308, -1e308, 3.5e38, 65520.0, 5e-324, -0.0]),
    st.booleans(),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "0x10", ""]),
    st.none(),
)
nested_data = st.recursive(numbers, lambda inner: st.lists(inner, max_size=4), max_leaves=24)
datatypes = st.one_of(
    st.sampled_from(sorted(DATATYPES)),
    st.sampled_from(["fp32", "FLOAT32", "STRING", "BF16", "INT128", " FP32", "FP32\x00", ""]),
    json_values,
)
dims = st.one_of(
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=-3, max_value=-1),
    st.sampled_from([2**31, 2**63, 2**64, 10**30]),
    st.booleans(),
    st.floats(min_value=0, max_value=4),
    st.text(max_size=2),
    st.none(),
)
shapes = st.one_of(st.lists(dims, max_size=5), st.lists(st.just(1), min_size=30, max_size=70))


def _elements(datatype: str) -> st.SearchStrategy[Any]:
    """Values that fit ``datatype``."""
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "BYTES":
        return st.text(max_size=4)
    dtype = NUMPY_DTYPE[datatype]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(min_value=int(info.min), max_value=int(info.max))
    finite = {
        "FP16": st.floats(allow_nan=False, allow_infinity=False, width=16),
        "FP32": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "FP64": st.floats(allow_nan=False, allow_infinity=False),
    }[datatype]
    return finite | st.integers(min_value=-1000, max_value=1000)


def _nest(flat: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@st.composite
def valid_tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A tensor that decodes: data fits its shape and its datatype (flat or nested)."""
    shape = draw(st.lists(st.integers(min_value=0, max_value=3), max_size=3))
    datatype = draw(st.sampled_from(sorted(DATATYPES)))
    size = math.prod(shape)
    flat = draw(st.lists(_elements(datatype), min_size=size, max_size=size))
    data = _nest(flat, shape) if size and draw(st.booleans()) else flat
    name = draw(st.text(min_size=1, max_size=6))
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


# One change that makes a valid tensor (probably) wrong: a field replaced or removed.
junk = st.one_of(json_values, numbers, shapes, datatypes, nested_data)
TENSOR_FIELDS = ["name", "shape", "datatype", "data", "parameters"]
mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(TENSOR_FIELDS), junk),
    st.tuples(st.just("drop"), st.sampled_from(TENSOR_FIELDS), st.none()),
    st.tuples(st.just("append"), st.just("data"), numbers),
)


@st.composite
def near_valid_tensors(draw: st.DrawFn) -> dict[str, Any]:
    tensor = draw(valid_tensors())
    for action, field, value in draw(st.lists(mutations, max_size=2)):
        if action == "set":
            tensor[field] = value
        elif action == "drop":
            tensor.pop(field, None)
        elif isinstance(tensor.get("data"), list):
            tensor["data"] = [*tensor["data"], value]
    return tensor


loose_tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=6), json_values),
        "shape": st.one_of(shapes, json_values),
        "datatype": datatypes,
        "data": st.one_of(st.lists(numbers, max_size=12), nested_data, json_values),
        "parameters": json_values,
    },
)
tensors = st.one_of(valid_tensors(), near_valid_tensors(), loose_tensors, json_values)
request_fields = {
    "id": st.one_of(st.text(max_size=8), json_values),
    "parameters": st.one_of(st.dictionaries(st.text(max_size=6), json_values), json_values),
    "outputs": st.one_of(
        st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=2),
        st.lists(
            st.fixed_dictionaries({}, optional={"name": json_values, "parameters": json_values})
            | json_values,
            max_size=3,
        ),
        json_values,
    ),
}
oip_requests = st.one_of(
    # Mostly right: valid tensors (or one changed) and right-typed optional fields.
    st.fixed_dictionaries(
        {"inputs": st.lists(valid_tensors() | near_valid_tensors(), min_size=1, max_size=3)},
        optional={
            "id": st.text(max_size=8),
            "parameters": st.dictionaries(st.text(max_size=6), json_values, max_size=3),
            "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=2),
        },
    ),
    # Anything in any field.
    st.fixed_dictionaries(
        {"inputs": st.one_of(st.lists(tensors, max_size=3), json_values)},
        optional=request_fields,
    ),
)
v1_requests = st.fixed_dictionaries(
    {},
    optional={
        "instances": st.one_of(st.lists(json_values, max_size=4), json_values),
        "inputs": json_values,
        "parameters": json_values,
    },
)


def encode(value: Any) -> bytes:
    # The standard library writes integers of any size and NaN/Infinity, as a sloppy client
    # might; orjson refuses both, so it cannot make these bodies.
    return json.dumps(value).encode()


# Header names are HTTP tokens; values are what an HTTP/1.1 server lets through (visible
# ASCII, obs-text and inner blanks), as uvicorn would hand them to the app.
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FIELD_CHARS = "".join(map(chr, [*range(0x21, 0x7F), *range(0x80, 0x100)])) + " \t"
INTERESTING_HEADERS = [
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "upgrade",
    "host",
    "traceparent",
    "tracestate",
    "baggage",
    "x-request-id",
    "x-orchard-unit",
    "x-orchard-model-version",
    "authorization",
    "x-api-key",
    "accept",
    "accept-encoding",
    "forwarded",
    "x-forwarded-for",
    "cookie",
]
header_names = st.one_of(
    st.sampled_from(INTERESTING_HEADERS), st.text(alphabet=TOKEN, min_size=1, max_size=16)
)
hex_text = st.text(alphabet="0123456789abcdef", min_size=0, max_size=34)
header_values = st.one_of(
    st.text(alphabet=FIELD_CHARS, max_size=40).map(lambda s: s.strip(" \t")),
    st.integers().map(str),
    st.builds(lambda *parts: "-".join(parts), hex_text, hex_text, hex_text, hex_text),
    st.sampled_from(["close, content-type", "100-continue", "gzip", "chunked", "Bearer", "-1"]),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=6)


def latin1(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
