"""Property tests: whatever a client sends, the runtime answers 200, 400 or 404 — never a 500.

Random shapes, datatypes, data (flat, nested, ragged, of the wrong kind), missing fields,
random JSON anywhere, random input and output names and model names, against an in-process
app serving a column model (credit-risk) and a tensor model (digits). Every 4xx body is
``{"error": <non-empty str>}``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchard_core import new_registry
from orchard_inference import InferenceSettings, create_app

from .factories import CreditModel, DigitsModel

Call = Callable[[str, str, bytes | None], httpx2.Response]
MODELS = ("credit-risk", "digits")
DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
)  # fmt: skip
INPUT_NAMES = ("age", "income", "purpose", "pixels")
OUTPUT_NAMES = ("predict", "predict_proba", "logits")
EXAMPLES = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.fixture(scope="module")
def call(credit_model: CreditModel, digits_model: DigitsModel) -> Iterator[Call]:
    """Send one request to a started in-process runtime (its own event loop, kept running)."""
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    settings_ = InferenceSettings(models=models, log_json=False, lazy_load_registry=False)
    app = create_app(settings_, registry=new_registry())
    torch_threads = torch.get_num_threads()
    with asyncio.Runner() as runner:
        lifespan = app.router.lifespan_context(app)
        runner.run(lifespan.__aenter__())
        runner.run(app.state.dataplane.repository.started())
        client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://runtime"
        )

        def send(method: str, path: str, body: bytes | None) -> httpx2.Response:
            return runner.run(client.request(method, path, content=body))

        try:
            yield send
        finally:
            runner.run(client.aclose())
            runner.run(lifespan.__aexit__(None, None, None))
            torch.set_num_threads(torch_threads)


#: The one 500 allowed: a null in a double column reaches the model as NaN, and the model's own
#: refusal is an inference failure (tests/api/test_v1.py pins that contract).
MODEL_REFUSES_NAN = "failed to predict: ValueError: Input X contains NaN"


def check(reply: httpx2.Response) -> None:
    if reply.status_code == 500 and MODEL_REFUSES_NAN in reply.json().get("error", ""):
        return
    assert reply.status_code in (200, 400, 404), (reply.status_code, reply.text)
    if reply.status_code != 200:
        body = reply.json()
        assert list(body) == ["error"], body
        assert isinstance(body["error"], str), body
        assert body["error"].strip(), body


# -- strategies --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(INPUT_NAMES) | st.text(max_size=8)
datatypes = st.sampled_from(DATATYPES) | st.text(max_size=6) | json_values
shapes = st.lists(st.integers(min_value=-3, max_value=6), max_size=4) | json_values


@st.composite
def nested(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Any:
    """Flat, or nested by a random shape (sometimes ragged), of ``values``."""
    items = draw(st.lists(values, max_size=12))
    depth = draw(st.integers(min_value=0, max_value=2))
    for _ in range(depth):
        width = draw(st.integers(min_value=1, max_value=4))
        items = [items[i : i + width] for i in range(0, len(items), width)]
    return items


element_values = scalars | st.sampled_from([float("inf"), -0.0, 2**63, 2**64, -(2**63) - 1])
data = (
    nested(element_values) | nested(st.integers(0, 300)) | nested(st.text(max_size=4)) | json_values
)

tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": names | json_values,
        "shape": shapes,
        "datatype": datatypes,
        "data": data,
        "parameters": json_values,
    },
)


@st.composite
def consistent_tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed tensor (shape and data agree) of any datatype: reaches the model code."""
    shape = draw(st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3))
    count = math.prod(shape)
    datatype = draw(st.sampled_from(DATATYPES))
    value = {
        "BOOL": st.booleans(),
        "BYTES": st.text(max_size=5),
        "FP16": st.floats(width=16, allow_nan=False, allow_infinity=False),
        "FP32": st.floats(width=32, allow_nan=False, allow_infinity=False),
        "FP64": st.floats(allow_nan=False, allow_infinity=False),
    }.get(datatype, st.integers(min_value=-(2**64), max_value=2**64))
    values = draw(st.lists(value | element_values, min_size=count, max_size=count))
    return {"name": draw(names), "shape": shape, "datatype": datatype, "data": values}


requested_outputs = st.lists(
    st.fixed_dictionaries(
        {}, optional={"name": st.sampled_from(OUTPUT_NAMES) | st.text(max_size=6) | json_values}
    )
    | json_values,
    max_size=3,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "parameters": json_values,
        "inputs": st.lists(tensors | consistent_tensors(), max_size=4) | json_values,
        "outputs": requested_outputs | json_values,
    },
)


def dumps(value: Any) -> bytes:
    """JSON with integers beyond 64 bits and Infinity (what orjson would refuse to write)."""
    return json.dumps(value).encode()


bodies = (
    requests.map(dumps)
    | json_values.map(dumps)
    | st.binary(max_size=40)
    | st.sampled_from([b"", b"{", b'{"inputs": NaN}', b'{"inputs": [{"data": [Infinity]}]}'])
)


# -- properties --------------------------------------------------------------------------------


@EXAMPLES
@given(model=st.sampled_from(MODELS), body=bodies)
def test_v2_infer_never_fails_with_a_500(call: Call, model: str, body: bytes) -> None:
    check(call("POST", f"/v2/models/{model}/infer", body))


@EXAMPLES
@given(model=st.sampled_from(MODELS), inputs=st.lists(consistent_tensors(), min_size=1, max_size=3))
def test_well_formed_tensors_of_any_type_never_fail_with_a_500(
    call: Call, model: str, inputs: list[dict[str, Any]]
) -> None:
    # Valid names half the time, so the data reaches the schema checks and the model.
    check(call("POST", f"/v2/models/{model}/infer", dumps({"inputs": inputs})))


@EXAMPLES
@given(
    model=st.sampled_from(MODELS),
    instances=json_values | st.lists(nested(element_values), max_size=3),
    extra=st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)
def test_v1_predict_never_fails_with_a_500(
    call: Call, model: str, instances: Any, extra: dict[str, Any]
) -> None:
    body = dumps({**extra, "instances": instances})
    check(call("POST", f"/v1/models/{model}:predict", body))


@settings(max_examples=60, deadline=None)
@given(
    # "." and ".." are path segments, which the client resolves away before sending.
    model=st.text(min_size=1, max_size=10).filter(lambda x: x not in {".", ".."}),
    version=st.none() | st.text(min_size=1, max_size=5).filter(lambda x: x not in {".", ".."}),
    endpoint=st.sampled_from(["infer", "ready", ""]),
)
def test_random_model_names_and_versions_are_404_or_answered(
    call: Call, model: str, version: str | None, endpoint: str
) -> None:
    path = f"/v2/models/{quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{quote(version, safe='')}"
    if endpoint:
        path += f"/{endpoint}"
    method = "POST" if endpoint == "infer" else "GET"
    check(call(method, path, b'{"inputs": []}' if method == "POST" else None))


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        # A double beyond int64 cast to the long column warned and sent garbage to the model.
        ("/v1/models/credit-risk:predict", {"instances": [[-9.3e18, 1.0, "car"]]},
         "value out of range for column type long"),
        # uint64 2**63 wrapped to -2**63 silently.
        ("/v2/models/credit-risk/infer",
         {"inputs": [{"name": "age", "shape": [1], "datatype": "UINT64", "data": [2**63]},
                     {"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]},
                     {"name": "purpose", "shape": [1], "datatype": "BYTES", "data": ["car"]}]},
         "value out of range for column type long"),
        # Comparing FP16 values with int64's bounds overflowed in FP16.
        ("/v2/models/credit-risk/infer",
         {"inputs": [{"name": "age", "shape": [1], "datatype": "FP16", "data": [0.0]},
                     {"name": "income", "shape": [1], "datatype": "FP64", "data": [1e300]},
                     {"name": "purpose", "shape": [1], "datatype": "BYTES", "data": ["car"]}]},
         None),
        # A finite double too large for the FP32 model became inf (with a warning).
        ("/v2/models/digits/infer",
         {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP64",
                      "data": [1e300] * 64}]},
         "value out of range for FP32"),
    ],
)  # fmt: skip
def test_values_out_of_the_models_range_are_400(
    call: Call, path: str, body: Any, message: str | None
) -> None:
    reply = call("POST", path, dumps(body))
    if message is None:
        assert reply.status_code == 200, reply.text
    else:
        assert reply.status_code == 400, reply.text
        assert message in reply.json()["error"]
