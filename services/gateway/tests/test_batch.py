"""Rows to OIP v2 requests and back, in chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from orchard_core.errors import InvalidInput, PayloadTooLarge, UpstreamError
from orchard_core.oip import decode_infer_request
from orchard_gateway.batch import (
    chunk_bounds,
    parse_batch_request,
    rows_to_infer_request,
    split_outputs,
)

CREDIT_ROW: dict[str, Any] = {
    "age": 41,
    "income": 52000.0,
    "debt_ratio": 0.3,
    "credit_history_months": 120,
    "num_open_accounts": 4,
    "loan_amount": 15000,
    "employment_type": "salaried",
    "home_ownership": "rent",
    "loan_purpose": "car",
}


def test_credit_risk_rows_become_one_tensor_per_column() -> None:
    rows = [CREDIT_ROW, {**CREDIT_ROW, "age": 30, "loan_amount": 999.5}]
    request = decode_infer_request(rows_to_infer_request(rows, "req-7"))
    assert request.id == "req-7"
    types = {t.name: (t.datatype, t.shape) for t in request.inputs}
    assert types == {
        "age": ("INT64", (2,)),
        "income": ("FP64", (2,)),
        "debt_ratio": ("FP64", (2,)),
        "credit_history_months": ("INT64", (2,)),
        "num_open_accounts": ("INT64", (2,)),
        "loan_amount": ("FP64", (2,)),  # 15000 and 999.5: numbers, so FP64
        "employment_type": ("BYTES", (2,)),
        "home_ownership": ("BYTES", (2,)),
        "loan_purpose": ("BYTES", (2,)),
    }
    age = request.input("age")
    assert age is not None
    assert age.data.tolist() == [41, 30]


def test_list_values_become_a_row_per_first_dimension() -> None:
    rows = [{"pixels": [0.0] * 64}, {"pixels": [1] * 64}]
    [pixels] = decode_infer_request(rows_to_infer_request(rows, "r")).inputs
    assert (pixels.datatype, pixels.shape) == ("FP64", (2, 64))
    assert pixels.data[1].tolist() == [1.0] * 64


def test_a_column_of_numbers_is_fp64_in_every_chunk() -> None:
    # The whole batch's datatypes win over a chunk that happens to hold only integers.
    [income] = decode_infer_request(
        rows_to_infer_request([{"x": 1}, {"x": 2}], "r", datatypes={"x": "FP64"})
    ).inputs
    assert (income.datatype, income.data.tolist()) == ("FP64", [1.0, 2.0])


def test_booleans_are_bool() -> None:
    [flag] = decode_infer_request(rows_to_infer_request([{"f": True}, {"f": False}], "r")).inputs
    assert flag.datatype == "BOOL"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"a": 1}, {"a": 1, "b": 2}],
            "row 1: columns differ from the first row's (unexpected ['b'])",
        ),
        (
            [{"a": 1, "b": 2}, {"a": 1}],
            "row 1: columns differ from the first row's (missing ['b'])",
        ),
        ([{"a": 1}, {"a": "x"}], "row 1, column 'a': is str, earlier rows have int"),
        ([{"a": 1}, {"a": None}], "row 1, column 'a': is null"),
        (
            [{"a": [1, 2]}, {"a": [1]}],
            "row 1, column 'a': is a list of 1, earlier rows have a list of 2",
        ),
        ([{"a": [1, 2]}, {"a": 3}], "row 1, column 'a': is a scalar"),
        ([{"a": [1, "x"]}], "row 0, column 'a': list mixes int and str"),
        ([{"a": {"b": 1}}], "row 0, column 'a': is a dict"),
        ([{"a": 2**64}], "row 0, column 'a': is an integer outside the INT64 range"),
        ([{"a": []}], "row 0, column 'a': is an empty list"),
        (["nope"], "row 0: must be a JSON object"),
        ([{}], "row 0: has no columns"),
    ],
)
def test_rows_that_do_not_fit_are_refused_by_row_and_column(rows: list[Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rows_to_infer_request(rows, "r")
    assert message in caught.value.message


def test_split_outputs_gives_one_dict_per_row_in_order() -> None:
    body = orjson.dumps(
        {
            "model_name": "credit-risk",
            "outputs": [
                {"name": "predict", "shape": [3], "datatype": "INT64", "data": [0, 1, 0]},
                {
                    "name": "predict_proba",
                    "shape": [3, 2],
                    "datatype": "FP64",
                    "data": [0.9, 0.1, 0.2, 0.8, 0.7, 0.3],
                },
            ],
        }
    )
    assert split_outputs(body, 3) == [
        {"predict": 0, "predict_proba": [0.9, 0.1]},
        {"predict": 1, "predict_proba": [0.2, 0.8]},
        {"predict": 0, "predict_proba": [0.7, 0.3]},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"outputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            "[2, ...]",
        ),
        (b"not json", "not an OIP v2 response"),
    ],
)
def test_split_outputs_refuses_answers_that_do_not_match_the_rows(
    body: bytes, message: str
) -> None:
    with pytest.raises(UpstreamError, match=message.replace("[", r"\[").replace(".", r"\.")):
        split_outputs(body, 2)


def test_chunk_bounds_cover_every_row_once() -> None:
    assert chunk_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert chunk_bounds(6, 3) == [(0, 3), (3, 6)]
    assert chunk_bounds(1, 256) == [(0, 1)]


def test_batch_request_limits() -> None:
    body = orjson.dumps({"rows": [{"a": 1}] * 5, "chunk_size": 2})
    batch = parse_batch_request(body, max_rows=5, max_chunk_size=2)
    assert (len(batch.rows), batch.chunk_size) == (5, 2)
    with pytest.raises(PayloadTooLarge, match="ORCHARD_GATEWAY_BATCH_MAX_ROWS"):
        parse_batch_request(body, max_rows=4, max_chunk_size=2)
    with pytest.raises(InvalidInput, match="'chunk_size' must be an integer from 1 to 1"):
        parse_batch_request(body, max_rows=5, max_chunk_size=1)
