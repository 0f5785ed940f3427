"""Reading an MLflow model signature into the runtime's input schema and output metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from orchard_core.oip import datatype_of
from orchard_inference.schema import (
    Column,
    ColumnSchema,
    FreeSchema,
    InputSchema,
    TensorInput,
    TensorMeta,
    TensorSchema,
)

if TYPE_CHECKING:
    from mlflow.models.signature import ModelSignature

__all__ = ["input_schema", "output_metadata"]

# MLflow column types → (numpy dtype the model gets, OIP v2 datatype).
_COLUMN_TYPES: dict[str, tuple[np.dtype, str]] = {
    "boolean": (np.dtype(np.bool_), "BOOL"),
    "integer": (np.dtype(np.int32), "INT32"),
    "long": (np.dtype(np.int64), "INT64"),
    "float": (np.dtype(np.float32), "FP32"),
    "double": (np.dtype(np.float64), "FP64"),
    "string": (np.dtype(object), "BYTES"),
    "binary": (np.dtype(object), "BYTES"),
    "datetime": (np.dtype("datetime64[ns]"), "BYTES"),
}


def _datatype(dtype: np.dtype) -> str:
    try:
        return datatype_of(np.empty(0, dtype=dtype))
    except TypeError:
        return "BYTES"


def _column(spec: Any) -> Column:
    type_name = getattr(spec.type, "name", None)
    known = _COLUMN_TYPES.get(type_name) if isinstance(type_name, str) else None
    if known is None:  # arrays, objects, maps, "any": the model checks those itself
        return Column(spec.name, str(spec.type), "BYTES", None, bool(spec.required))
    dtype, datatype = known
    return Column(spec.name, type_name or "", datatype, dtype, bool(spec.required))


def _hint(metadata: Mapping[str, Any] | None, key: str) -> str | None:
    value = (metadata or {}).get(key)
    return value if isinstance(value, str) and value else None


def input_schema(
    signature: ModelSignature | None, metadata: Mapping[str, Any] | None = None
) -> InputSchema:
    """The schema requests are checked against; free-form when there is no usable signature.

    A lone unnamed tensor input takes its name from the MLmodel metadata's ``input_name``
    (MLflow's pyfunc layer mishandles named tensor inputs, so trainers name them there).
    """
    if signature is None or signature.inputs is None:
        return FreeSchema()
    inputs = signature.inputs
    if inputs.is_tensor_spec():
        specs = inputs.inputs
        if len(specs) > 1 and not inputs.has_input_names():
            return FreeSchema()
        return TensorSchema(
            [
                TensorInput(
                    spec.name or _hint(metadata, "input_name") or "input-0",
                    _datatype(spec.type),
                    spec.type,
                    tuple(spec.shape),
                )
                for spec in specs
            ]
        )
    if not inputs.has_input_names():
        return FreeSchema()
    return ColumnSchema([_column(spec) for spec in inputs.inputs])


def output_metadata(
    signature: ModelSignature | None, default: str, metadata: Mapping[str, Any] | None = None
) -> tuple[TensorMeta, ...]:
    """Outputs declared by the signature; a lone unnamed output is called after the MLmodel
    metadata's ``output_name``, else ``default``."""
    if signature is None or signature.outputs is None:
        return ()
    specs = signature.outputs.inputs
    metas = []
    for index, spec in enumerate(specs):
        lone = _hint(metadata, "output_name") or default
        name = spec.name or (lone if len(specs) == 1 else f"output-{index}")
        if signature.outputs.is_tensor_spec():
            metas.append(TensorMeta(name, _datatype(spec.type), tuple(spec.shape)))
        else:
            column = _column(spec)
            metas.append(TensorMeta(name, column.datatype, (-1,)))
    return tuple(metas)
