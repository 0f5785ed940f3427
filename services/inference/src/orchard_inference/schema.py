"""A model's inputs as its MLflow signature declares them, and requests turned into them.

Column signatures (tabular models) become a pandas DataFrame in signature column order;
tensor signatures become numpy arrays cast to the declared dtype. Every mismatch is an
``InvalidInput`` (400) that names the input and says what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np
import pandas as pd

from orchard_core import InvalidInput
from orchard_core.oip import InferTensor
from orchard_inference.coerce import fit_dtype, values_array

__all__ = [
    "Column",
    "ColumnSchema",
    "FreeSchema",
    "InputSchema",
    "ModelInput",
    "TensorInput",
    "TensorMeta",
    "TensorSchema",
]

#: What a flavor's predictor receives.
ModelInput: TypeAlias = pd.DataFrame | np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """One input or output as the OIP v2 model metadata describes it."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class InputSchema(Protocol):
    """Turns OIP v2 inputs or KServe v1 instances into what the model takes."""

    kind: str

    def metadata(self) -> list[TensorMeta]:
        """The inputs, for the model metadata endpoint."""
        ...

    def from_tensors(self, inputs: Sequence[InferTensor]) -> ModelInput:
        """Validate OIP v2 inputs against the signature and convert them."""
        ...

    def from_instances(self, instances: list[Any]) -> ModelInput:
        """Validate KServe v1 instances (rows) against the signature and convert them."""
        ...


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a column-based signature; ``dtype`` None means any values."""

    name: str
    type_name: str
    datatype: str
    dtype: np.dtype | None
    required: bool = True


def _one_per_row(where: str, array: np.ndarray) -> np.ndarray:
    if array.ndim == 1:
        return array
    if array.ndim == 2 and array.shape[1] == 1:
        return array.reshape(-1)
    raise InvalidInput(f"{where}: a column input has shape [n] or [n, 1], got {list(array.shape)}")


class ColumnSchema:
    """A tabular signature: one OIP v2 input (or v1 row field) per named column."""

    kind = "columns"

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self._names = frozenset(c.name for c in self.columns)
        self._listing = ", ".join(c.name for c in self.columns)

    def metadata(self) -> list[TensorMeta]:
        return [TensorMeta(c.name, c.datatype, (-1,)) for c in self.columns]

    def _frame(self, arrays: dict[str, np.ndarray], rows: int) -> pd.DataFrame:
        for column in self.columns:
            if column.name not in arrays:  # an optional column the caller left out
                if column.dtype is not None and column.dtype.kind == "f":
                    arrays[column.name] = np.full(rows, np.nan, dtype=column.dtype)
                else:  # integers and booleans have no missing value: None, as pandas does
                    arrays[column.name] = np.full(rows, None, dtype=object)
        # Signature order: the column transformer may select by position.
        return pd.DataFrame({c.name: arrays[c.name] for c in self.columns}, copy=False)

    def _fit(self, where: str, column: Column, array: np.ndarray) -> np.ndarray:
        if column.dtype is None:
            return array.astype(object) if array.dtype.kind in "US" else array
        return fit_dtype(where, array, column.dtype, f"column type {column.type_name}")

    def from_tensors(self, inputs: Sequence[InferTensor]) -> pd.DataFrame:
        for tensor in inputs:
            if tensor.name not in self._names:
                raise InvalidInput(
                    f"unknown input '{tensor.name}'; the model's columns are: {self._listing}"
                )
        given = {t.name: t for t in inputs}
        arrays: dict[str, np.ndarray] = {}
        rows: int | None = None
        first = ""
        for column in self.columns:
            found = given.get(column.name)
            if found is None:
                if column.required:
                    raise InvalidInput(
                        f"missing input '{column.name}'; the model needs the columns: "
                        f"{self._listing}"
                    )
                continue
            where = f"input '{column.name}'"
            values = self._fit(where, column, _one_per_row(where, found.data))
            if rows is None:
                rows, first = len(values), column.name
            elif len(values) != rows:
                raise InvalidInput(
                    f"{where} has {len(values)} rows but input '{first}' has {rows}; "
                    "every column needs the same number of rows"
                )
            arrays[column.name] = values
        return self._frame(arrays, rows or 0)

    def _columns_of_rows(self, instances: list[Any]) -> dict[str, list[Any]]:
        names = [c.name for c in self.columns]
        values: dict[str, list[Any]] = {name: [] for name in names}
        for index, row in enumerate(instances):
            if isinstance(row, dict):
                for key in row:
                    if key not in self._names:
                        raise InvalidInput(
                            f"instances[{index}]: unknown column '{key}'; the model's columns "
                            f"are: {self._listing}"
                        )
                for column in self.columns:
                    if column.name in row:
                        values[column.name].append(row[column.name])
                    elif column.required:
                        raise InvalidInput(f"instances[{index}]: missing column '{column.name}'")
                    else:
                        values[column.name].append(None)
            elif isinstance(row, list):
                if len(row) != len(names):
                    raise InvalidInput(
                        f"instances[{index}]: expected {len(names)} values in column order "
                        f"({self._listing}), got {len(row)}"
                    )
                for name, value in zip(names, row, strict=True):
                    values[name].append(value)
            else:
                raise InvalidInput(
                    f"instances[{index}]: a row is an object by column name or a list of "
                    f"values in column order ({self._listing})"
                )
        return values

    def from_instances(self, instances: list[Any]) -> pd.DataFrame:
        by_column = self._columns_of_rows(instances)
        arrays: dict[str, np.ndarray] = {}
        for column in self.columns:
            values = by_column[column.name]
            if not column.required and all(v is None for v in values):
                continue  # an optional column left out: _frame fills it in
            where = f"column '{column.name}'"
            raw = values_array(where, values)
            arrays[column.name] = self._fit(where, column, _one_per_row(where, raw))
        return self._frame(arrays, len(instances))


@dataclass(frozen=True, slots=True)
class TensorInput:
    """One input of a tensor-based signature (``-1`` dimensions take any size)."""

    name: str
    datatype: str
    dtype: np.dtype
    shape: tuple[int, ...]


class TensorSchema:
    """A tensor signature: one numpy array per declared input, shape and dtype checked."""

    kind = "tensors"

    def __init__(self, tensors: Sequence[TensorInput]) -> None:
        self.tensors = tuple(tensors)
        self._by_name = {t.name: t for t in self.tensors}
        self._listing = ", ".join(t.name for t in self.tensors)

    def metadata(self) -> list[TensorMeta]:
        return [TensorMeta(t.name, t.datatype, t.shape) for t in self.tensors]

    @staticmethod
    def _fit(where: str, spec: TensorInput, array: np.ndarray) -> np.ndarray:
        expected = spec.shape
        if array.ndim != len(expected) or any(
            want not in (-1, got) for want, got in zip(expected, array.shape, strict=True)
        ):
            raise InvalidInput(f"{where}: expected shape {list(expected)}, got {list(array.shape)}")
        return fit_dtype(where, array, spec.dtype, spec.datatype)

    def from_tensors(self, inputs: Sequence[InferTensor]) -> np.ndarray | dict[str, np.ndarray]:
        if len(self.tensors) == 1:
            spec = self.tensors[0]
            if len(inputs) != 1:
                raise InvalidInput(f"the model takes one input ('{spec.name}'), got {len(inputs)}")
            # A single-input model accepts its input under any name, as KServe's servers do.
            return self._fit(f"input '{inputs[0].name}'", spec, inputs[0].data)
        arrays: dict[str, np.ndarray] = {}
        given = {t.name: t for t in inputs}
        for name in given:
            if name not in self._by_name:
                raise InvalidInput(
                    f"unknown input '{name}'; the model's inputs are: {self._listing}"
                )
        for spec in self.tensors:
            tensor = given.get(spec.name)
            if tensor is None:
                raise InvalidInput(f"missing input '{spec.name}'; the model needs: {self._listing}")
            arrays[spec.name] = self._fit(f"input '{spec.name}'", spec, tensor.data)
        return arrays

    def from_instances(self, instances: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
        if len(self.tensors) == 1:
            spec = self.tensors[0]
            return self._fit("instances", spec, values_array("instances", instances))
        arrays: dict[str, np.ndarray] = {}
        for spec in self.tensors:
            column = []
            for index, row in enumerate(instances):
                if not isinstance(row, dict) or spec.name not in row:
                    raise InvalidInput(
                        f"instances[{index}]: needs an object with the inputs {self._listing}"
                    )
                column.append(row[spec.name])
            where = f"input '{spec.name}'"
            arrays[spec.name] = self._fit(where, spec, values_array(where, column))
        return arrays


class FreeSchema:
    """No usable signature: inputs pass through unchecked (the model validates them)."""

    kind = "free"

    def metadata(self) -> list[TensorMeta]:
        return []

    def from_tensors(self, inputs: Sequence[InferTensor]) -> ModelInput:
        if len(inputs) == 1:
            return inputs[0].data
        arrays = {t.name: _one_per_row(f"input '{t.name}'", t.data) for t in inputs}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise InvalidInput("inputs have different numbers of rows")
        return pd.DataFrame(arrays, copy=False)

    def from_instances(self, instances: list[Any]) -> ModelInput:
        if all(isinstance(row, dict) for row in instances):
            return pd.DataFrame.from_records(instances)
        array = values_array("instances", instances)
        return array.astype(object) if array.dtype.kind in "US" else array
