"""The benchmark's baseline: ``kserve.ModelServer`` serving the same two MLflow models.

Written the way a team would write a custom Python predictor with KServe today: one
``kserve.Model`` subclass per model, loaded with ``mlflow.<flavor>.load_model``, predicting in
``predict`` on the OIP v2 ``InferRequest``; one process, one uvicorn worker, KServe defaults.
Four deviations from the defaults, all in KServe's favour, so that it does the same work per
request as Orchard's runtime (which logs at WARNING and serves no gRPC in the benchmark):

- gRPC off (``enable_grpc=False``): wrk speaks HTTP only, an idle gRPC server is noise;
- the per-request latency log line off (``enable_latency_logging=False``);
- uvicorn's access log off (``uvicorn.access`` logger disabled) and KServe's log at WARNING;
- FastAPI's ``FastAPIDeprecationWarning`` about KServe's ``ORJSONResponse`` ignored: with
  KServe 0.21 and this FastAPI it is printed to stderr on every request.

KServe's SIGTERM handler does not stop a single-worker REST server; ``run.py`` kills it.

Usage: ``python kserve_baseline.py --port 8090 --credit-risk DIR --digits DIR``
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd

# kserve parses sys.argv when imported (argparse at import time): keep our arguments from it.
_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]

import kserve  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402
from kserve.utils.utils import generate_uuid  # noqa: E402


class CreditRiskModel(kserve.Model):  # type: ignore[misc]
    """The credit-risk scikit-learn Pipeline: ``predict`` (INT64) and ``predict_proba`` (FP64)."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path
        self._model: Any = None

    def load(self) -> bool:
        import mlflow.sklearn

        self._model = mlflow.sklearn.load_model(self._path)
        self.ready = True
        return True

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        frame = pd.DataFrame({tensor.name: tensor.as_numpy() for tensor in payload.inputs})
        labels = np.asarray(self._model.predict(frame)).astype(np.int64)
        proba = np.asarray(self._model.predict_proba(frame), dtype=np.float64)
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=[_output("predict", labels, "INT64"), _output("predict_proba", proba)],
        )


class DigitsModel(kserve.Model):  # type: ignore[misc]
    """The digits ``nn.Sequential``: float32 pixels ``[n, 64]`` in, ``logits`` ``[n, 10]`` out."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path
        self._model: Any = None

    def load(self) -> bool:
        import mlflow.pytorch

        self._model = mlflow.pytorch.load_model(self._path, map_location="cpu")
        self._model.eval()
        self.ready = True
        return True

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        import torch

        pixels = torch.from_numpy(payload.inputs[0].as_numpy().astype(np.float32))
        with torch.inference_mode():
            logits = self._model(pixels).numpy()
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=[_output("logits", logits, "FP32")],
        )


def _output(name: str, array: np.ndarray, datatype: str = "FP64") -> InferOutput:
    output = InferOutput(name=name, shape=list(array.shape), datatype=datatype)
    output.set_data_from_numpy(array, binary_data=False)
    return output


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="HTTP port")
    parser.add_argument("--credit-risk", required=True, help="MLflow sklearn model directory")
    parser.add_argument("--digits", required=True, help="MLflow pytorch model directory")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    models: list[kserve.Model] = [
        CreditRiskModel("credit-risk", args.credit_risk),
        DigitsModel("digits", args.digits),
    ]
    for model in models:
        model.load()
    server = kserve.ModelServer(
        http_port=args.port, enable_grpc=False, enable_latency_logging=False, workers=1
    )
    # ModelServer configured KServe's logging above; quiet it as Orchard's runtime is quiet.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("kserve", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        from fastapi.exceptions import FastAPIDeprecationWarning

        warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    server.start(models)


if __name__ == "__main__":
    main(_ARGV)
