"""PyTorch models (the ``pytorch`` flavor), run under ``torch.inference_mode``."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from orchard_inference.flavors.base import Outputs, Predictor, conform
from orchard_inference.schema import InputSchema, ModelInput, TensorMeta, TensorSchema
from orchard_inference.signature import output_metadata

if TYPE_CHECKING:
    import torch
    from mlflow.models import Model as MlflowModel

__all__ = ["PyTorchLoader", "TorchPredictor"]

_log = logging.getLogger("orchard.inference.pytorch")


class TorchPredictor:
    """Calls an ``nn.Module`` on numpy input; outputs come back as numpy on the CPU."""

    platform = "pytorch"

    def __init__(
        self,
        module: Any,
        device: torch.device,
        input_names: Sequence[str],
        outputs: tuple[TensorMeta, ...],
        threads: int = 1,
        half: bool = False,
    ) -> None:
        import torch

        self._torch = torch
        self._threads = threads
        self._half = half
        self._threads_set: set[int] = set()
        self._module = module
        self._device = device
        self._input_names = tuple(input_names)
        self.outputs = outputs

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        if not array.flags.writeable:  # torch warns on read-only buffers it would share
            array = array.copy()
        tensor = self._torch.from_numpy(np.ascontiguousarray(array))
        if self._device.type != "cpu":
            tensor = tensor.to(self._device, non_blocking=True)
        if self._half and tensor.is_floating_point():
            tensor = tensor.half()  # the module's weights are fp16 too
        return tensor

    def _numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, self._torch.Tensor):
            if value.dtype == self._torch.bfloat16:  # numpy has no bfloat16
                value = value.float()
            array: np.ndarray = value.detach().cpu().numpy()
            return array
        return np.asarray(value)

    def _name(self, index: int) -> str:
        return self.outputs[index].name if index < len(self.outputs) else f"output-{index}"

    def _limit_threads(self) -> None:
        # With OpenMP, torch.set_num_threads binds the calling thread only: set it in the
        # thread that runs predictions (the event loop today, a batching worker later), not
        # just in the loader's worker thread.
        ident = threading.get_ident()
        if ident not in self._threads_set:
            self._torch.set_num_threads(self._threads)
            self._threads_set.add(ident)

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        self._limit_threads()
        if isinstance(data, dict):
            args = [self._tensor(data[name]) for name in self._input_names]
        elif isinstance(data, np.ndarray):
            args = [self._tensor(data)]
        else:  # a DataFrame: the model takes its values as one matrix
            args = [self._tensor(data.to_numpy())]
        with self._torch.inference_mode():
            raw = self._module(*args)
        if isinstance(raw, Mapping):
            named = {str(k): v for k, v in raw.items()}
        elif isinstance(raw, tuple | list):
            named = {self._name(i): v for i, v in enumerate(raw)}
        else:
            named = {self._name(0): raw}
        metas = {m.name: m for m in self.outputs}
        return {
            name: conform(self._numpy(value), metas.get(name))
            for name, value in named.items()
            if wanted is None or name in wanted
        }


class PyTorchLoader:
    """Loads the ``pytorch`` flavor with ``mlflow.pytorch``, on CUDA when there is one."""

    flavor = "pytorch"

    def __init__(self, threads: int = 1, device: str = "auto", *, fp16: bool = False) -> None:
        self._threads = threads
        self._device = device
        self._fp16 = fp16
        self._configured = False

    def _configure(self) -> torch.device:
        import torch

        if not self._configured:
            # Applied on the first torch model rather than at import. The inter-op pool is
            # process-wide; intra-op threads are set per predicting thread (TorchPredictor).
            # RuntimeError: already set, or torch already ran parallel work.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(1)
            self._configured = True
        name = self._device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(name)

    def load(self, path: str, model: MlflowModel, schema: InputSchema) -> Predictor:
        import mlflow.pytorch

        device = self._configure()
        module = mlflow.pytorch.load_model(path, map_location=device)
        module = module.to(device)
        # Exported (pt2) graphs have no train mode and refuse eval().
        with contextlib.suppress(NotImplementedError, RuntimeError):
            module.eval()
        half = self._fp16 and device.type == "cuda"
        if self._fp16 and not half:
            _log.warning("fp16 asked for, but %s runs on %s: serving in fp32", path, device)
        if half:
            module = module.half()
        names = [t.name for t in schema.tensors] if isinstance(schema, TensorSchema) else []
        outputs = output_metadata(model.signature, "output-0", model.metadata)
        predictor = TorchPredictor(module, device, names, outputs, threads=self._threads, half=half)
        if isinstance(schema, TensorSchema):
            _warm_up(predictor, schema)
        return predictor


def _warm_up(predictor: TorchPredictor, schema: TensorSchema) -> None:
    """One forward pass on zeros, so the first request doesn't pay for lazy initialisation."""
    zeros = {
        t.name: np.zeros([1 if d < 0 else d for d in t.shape], dtype=t.dtype)
        for t in schema.tensors
    }
    data: ModelInput = zeros if len(zeros) > 1 else next(iter(zeros.values()))
    predictor.predict(data, None)
    _log.debug("warm-up forward done")
