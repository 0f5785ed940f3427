"""Requests turned into model input: column and tensor signatures, values fitted to dtypes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from orchard_core import InvalidInput
from orchard_core.oip import InferTensor
from orchard_inference.coerce import fit_dtype
from orchard_inference.schema import Column, ColumnSchema, FreeSchema, TensorInput, TensorSchema

COLUMNS = ColumnSchema(
    [
        Column("age", "long", "INT64", np.dtype(np.int64)),
        Column("score", "float", "FP32", np.dtype(np.float32)),
        Column("city", "string", "BYTES", np.dtype(object)),
        Column("note", "string", "BYTES", np.dtype(object), required=False),
        Column("income", "double", "FP64", np.dtype(np.float64), required=False),
        Column("children", "long", "INT64", np.dtype(np.int64), required=False),
    ]
)


def test_columns_become_a_frame_in_signature_order_with_signature_dtypes() -> None:
    frame = COLUMNS.from_tensors(
        [
            InferTensor.of("city", np.array(["a", "b"], dtype=object)),
            InferTensor.of("score", np.array([[1.5], [2.5]])),
            InferTensor.of("age", np.array([30, 40], dtype=np.int32)),
        ]
    )
    assert list(frame.columns) == ["age", "score", "city", "note", "income", "children"]
    dtypes = ["int64", "float32", "object", "object", "float64", "object"]
    assert [str(t) for t in frame.dtypes] == dtypes
    assert frame[["note", "income", "children"]].isna().all().all()


def test_rows_by_name_or_position_give_the_same_frame() -> None:
    by_name = COLUMNS.from_instances([{"age": 1, "score": 0.5, "city": "x", "income": None}])
    by_position = COLUMNS.from_instances([[1, 0.5, "x", None, None, None]])
    pd.testing.assert_frame_equal(by_name, by_position)
    assert np.isnan(by_name["income"][0])


def test_whole_floats_fit_an_integer_column() -> None:
    frame = COLUMNS.from_instances([{"age": 30.0, "score": 1, "city": "x"}])
    assert frame["age"].dtype == np.int64
    assert frame["age"][0] == 30


@pytest.mark.parametrize(
    ("values", "dtype", "message"),
    [
        (np.array([1, 2]), np.dtype(object), "needs strings (T), got integers"),
        (np.array(["a"]), np.dtype(np.float64), "needs numbers (T), got strings"),
        (np.array([1.5]), np.dtype(np.int64), "needs integers (T), got fractional numbers"),
        (np.array([np.inf]), np.dtype(np.int64), "needs integers (T), got fractional numbers"),
        (np.array([1, None], dtype=object), np.dtype(np.int64), "needs numbers (T), got null"),
        (np.array([True]), np.dtype(np.float64), "needs numbers (T), got true/false"),
        (np.array([1.0]), np.dtype(np.bool_), "needs true/false (T), got fractional numbers"),
        (np.array([{"a": 1}], dtype=object), np.dtype(object), "needs strings (T), got dict"),
        (np.array([2**70], dtype=object), np.dtype(np.float64), None),
    ],
)
def test_values_that_do_not_fit_are_invalid_input(
    values: np.ndarray, dtype: np.dtype, message: str | None
) -> None:
    if message is None:  # huge integers still fit a float column
        assert fit_dtype("x", values, dtype, "T").dtype == dtype
        return
    with pytest.raises(InvalidInput, match="^" + re.escape(f"x: {message}")):
        fit_dtype("x", values, dtype, "T")


TENSORS = TensorSchema(
    [
        TensorInput("image", "FP32", np.dtype(np.float32), (-1, 2, 2)),
        TensorInput("mask", "BOOL", np.dtype(np.bool_), (-1,)),
    ]
)


def test_named_tensors_are_matched_by_name_and_cast() -> None:
    arrays = TENSORS.from_tensors(
        [
            InferTensor.of("mask", np.array([True])),
            InferTensor.of("image", np.ones((1, 2, 2), dtype=np.float64)),
        ]
    )
    assert isinstance(arrays, dict)
    assert arrays["image"].dtype == np.float32
    assert arrays["mask"].tolist() == [True]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([InferTensor.of("image", np.ones((1, 2, 2)))], "missing input 'mask'"),
        (
            [InferTensor.of("mask", np.array([True])), InferTensor.of("x", np.ones(1))],
            "unknown input 'x'; the model's inputs are: image, mask",
        ),
        (
            [
                InferTensor.of("image", np.ones((1, 2, 3))),
                InferTensor.of("mask", np.array([True])),
            ],
            r"input 'image': expected shape \[-1, 2, 2\], got \[1, 2, 3\]",
        ),
    ],
)
def test_named_tensor_mismatches(inputs: list[InferTensor], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TENSORS.from_tensors(inputs)


def test_rows_of_a_multi_input_tensor_model_are_objects_by_input() -> None:
    arrays = TENSORS.from_instances([{"image": [[1, 2], [3, 4]], "mask": True}])
    assert isinstance(arrays, dict)
    assert arrays["image"].shape == (1, 2, 2)
    with pytest.raises(InvalidInput, match=r"instances\[0\]: needs an object with the inputs"):
        TENSORS.from_instances([[1, 2]])


def test_without_a_signature_inputs_pass_through() -> None:
    free = FreeSchema()
    one = free.from_tensors([InferTensor.of("x", np.ones((2, 3)))])
    assert isinstance(one, np.ndarray)
    assert one.shape == (2, 3)
    frame = free.from_tensors(
        [InferTensor.of("a", np.ones(2)), InferTensor.of("b", np.array(["x", "y"], dtype=object))]
    )
    assert list(frame.columns) == ["a", "b"]
    assert list(free.from_instances([{"a": 1}]).columns) == ["a"]
    with pytest.raises(InvalidInput, match="different numbers of rows"):
        free.from_tensors([InferTensor.of("a", np.ones(2)), InferTensor.of("b", np.ones(3))])
