"""The Open Inference Protocol v2 (and KServe v1) codec shared by the gateway and runtime."""

from orchard_core.oip.codec import (
    InferRequest,
    InferResponse,
    InferTensor,
    RequestedOutput,
    decode_infer_request,
    decode_infer_response,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
    parse_json,
)
from orchard_core.oip.datatypes import DATATYPES, NUMPY_DTYPE, datatype_of

__all__ = [
    "DATATYPES",
    "NUMPY_DTYPE",
    "InferRequest",
    "InferResponse",
    "InferTensor",
    "RequestedOutput",
    "datatype_of",
    "decode_infer_request",
    "decode_infer_response",
    "decode_v1_request",
    "encode_infer_response",
    "encode_v1_response",
    "parse_json",
]
