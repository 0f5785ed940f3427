"""Decoding OIP v2 / KServe v1 requests and encoding responses.

Shared by the gateway and the runtime. The hot path uses orjson and hand-written checks
(no pydantic per request), and hands numpy arrays to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from orchard_core.errors import InvalidInput
from orchard_core.oip.datatypes import datatype_of
from orchard_core.oip.tensors import tensor_from_json, tensor_to_json

__all__ = [
    "InferRequest",
    "InferResponse",
    "InferTensor",
    "RequestedOutput",
    "decode_infer_request",
    "decode_infer_response",
    "decode_v1_request",
    "encode_infer_response",
    "encode_v1_response",
    "parse_json",
]


@dataclass(slots=True, frozen=True)
class InferTensor:
    """One named tensor of a request or response."""

    name: str
    datatype: str
    data: np.ndarray
    parameters: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @classmethod
    def of(cls, name: str, data: np.ndarray) -> InferTensor:
        """A tensor whose datatype follows the array's dtype."""
        return cls(name, datatype_of(data), data)


@dataclass(slots=True, frozen=True)
class RequestedOutput:
    """An output the caller asked for by name."""

    name: str
    parameters: dict[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class InferRequest:
    """A validated OIP v2 inference request."""

    inputs: tuple[InferTensor, ...]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: tuple[RequestedOutput, ...] | None = None

    def input(self, name: str) -> InferTensor | None:
        """The input called ``name``, if the request has one."""
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        return None


@dataclass(slots=True, frozen=True)
class InferResponse:
    """A decoded OIP v2 inference response."""

    model_name: str
    model_version: str | None
    id: str | None
    outputs: tuple[InferTensor, ...]
    parameters: dict[str, Any] | None = None

    def output(self, name: str) -> InferTensor:
        """The output called ``name``; KeyError if absent."""
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise KeyError(name)


def parse_json(body: bytes | str) -> Any:
    """Parse a request body, turning empty or malformed JSON into a clear 400."""
    if not body or (isinstance(body, bytes | str) and not body.strip()):
        raise InvalidInput("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None


def _optional_dict(where: str, value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise InvalidInput(f"{where}: 'parameters' must be a JSON object")


def _decode_input(index: int, raw: Any) -> InferTensor:
    if not isinstance(raw, dict):
        raise InvalidInput(f"inputs[{index}]: must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}]: 'name' is required and must be a non-empty string")
    where = f"input '{name}'"
    for field in ("shape", "datatype", "data"):
        if field not in raw:
            raise InvalidInput(f"{where}: '{field}' is required")
    array = tensor_from_json(where, raw["datatype"], raw["shape"], raw["data"])
    return InferTensor(name, raw["datatype"], array, _optional_dict(where, raw.get("parameters")))


def _decode_outputs(raw: Any) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    outputs = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}]: must be an object with a string 'name'")
        where = f"output '{item['name']}'"
        outputs.append(RequestedOutput(item["name"], _optional_dict(where, item.get("parameters"))))
    return tuple(outputs)


def decode_infer_request(body: bytes | str | dict[str, Any]) -> InferRequest:
    """Validate an OIP v2 inference request (raw body or already-parsed JSON).

    Raises:
        InvalidInput: with a message that says which field of which input is wrong.
    """
    payload = body if isinstance(body, dict) else parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("'inputs' is required and must be a non-empty list")
    inputs = tuple(_decode_input(i, raw) for i, raw in enumerate(raw_inputs))
    if len({t.name for t in inputs}) != len(inputs):
        raise InvalidInput("input names must be unique")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(
        inputs=inputs,
        id=request_id,
        parameters=_optional_dict("request", payload.get("parameters")),
        outputs=_decode_outputs(payload.get("outputs")),
    )


def encode_infer_response(
    *,
    model_name: str,
    model_version: str | None,
    outputs: Sequence[InferTensor],
    request_id: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """Serialize an OIP v2 inference response."""
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "id": request_id,
        "outputs": [tensor_to_json(t.name, t.datatype, t.data) for t in outputs],
    }
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_infer_response(body: bytes | str | dict[str, Any]) -> InferResponse:
    """Parse an OIP v2 inference response (for clients, the gateway and tests)."""
    payload = body if isinstance(body, dict) else parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("outputs"), list):
        raise InvalidInput("response must be a JSON object with an 'outputs' list")
    outputs = []
    for index, raw in enumerate(payload["outputs"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidInput(f"outputs[{index}]: must be an object with a string 'name'")
        where = f"output '{raw['name']}'"
        array = tensor_from_json(where, raw.get("datatype"), raw.get("shape"), raw.get("data"))
        outputs.append(InferTensor(raw["name"], raw["datatype"], array, raw.get("parameters")))
    version = payload.get("model_version")
    return InferResponse(
        model_name=str(payload.get("model_name", "")),
        model_version=None if version is None else str(version),
        id=payload.get("id"),
        outputs=tuple(outputs),
        parameters=payload.get("parameters"),
    )


def decode_v1_request(body: bytes | str | dict[str, Any]) -> list[Any]:
    """Validate a KServe v1 ``:predict`` request and return its ``instances``."""
    payload = body if isinstance(body, dict) else parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidInput("request body must be a JSON object with an 'instances' list")
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' is required and must be a non-empty list")
    return instances


def encode_v1_response(predictions: np.ndarray | list[Any]) -> bytes:
    """Serialize a KServe v1 response ``{"predictions": [...]}``."""
    data = predictions.tolist() if isinstance(predictions, np.ndarray) else predictions
    return orjson.dumps({"predictions": data})
