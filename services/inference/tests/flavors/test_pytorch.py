"""The pytorch flavor: exported (pt2) modules, dtype casts, several outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from orchard_inference.flavors.pytorch import TorchPredictor
from orchard_inference.schema import TensorMeta

from ..conftest import MakeRuntime
from ..factories import (
    DigitsModel,
    digits_network,
    digits_pixels,
    logits_of,
    save_digits_model,
    tensor_body,
)


class TwoHeads(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.sum(dim=1), (x * 2).to(torch.float64)


def test_tuple_outputs_are_named_and_cast_to_declared_dtypes() -> None:
    declared = (TensorMeta("total", "FP32", (-1,)), TensorMeta("double", "FP32", (-1, 2)))
    predictor = TorchPredictor(TwoHeads(), torch.device("cpu"), ["x"], declared)
    outputs = predictor.predict(np.ones((3, 2), dtype=np.float32), None)
    assert outputs["total"].tolist() == [2.0, 2.0, 2.0]
    assert outputs["double"].dtype == np.float32  # declared FP32 although forward gave float64
    assert list(predictor.predict(np.ones((1, 2), dtype=np.float32), frozenset(["total"]))) == [
        "total"
    ]


async def test_an_exported_pt2_model_serves_over_http(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """MLflow 3 saves torch models as exported graphs by default; those have no eval()."""
    network = digits_network(seed=4)
    path = save_digits_model(tmp_path / "m", network, serialization_format="pt2")
    async with make_runtime({"digits": str(path)}, torch_threads=1, device="cpu") as runtime:
        pixels = digits_pixels(3)
        reply = await runtime.client.post("/v2/models/digits/infer", json=tensor_body(pixels))
        assert reply.status_code == 200, reply.text
        data = np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, 10)
        np.testing.assert_allclose(data, logits_of(network, pixels), rtol=1e-5, atol=1e-6)


async def test_predictions_run_with_the_configured_torch_threads(
    make_runtime: MakeRuntime, digits_model: DigitsModel
) -> None:
    """torch.set_num_threads binds only the calling thread: it must be the predicting one."""
    wanted = 1 if torch.get_num_threads() != 1 else 2
    # Unbatched requests predict inline, in this thread; batched ones in the model's worker
    # thread (covered in test_batching).
    models = {"digits": str(digits_model.path)}
    async with make_runtime(models, torch_threads=wanted, batch_enabled=False) as runtime:
        reply = await runtime.client.post(
            "/v2/models/digits/infer", json=tensor_body(digits_pixels(1))
        )
        assert reply.status_code == 200
        assert torch.get_num_threads() == wanted  # in this thread, where the app predicted


def test_half_precision_casts_inputs_and_gives_back_the_declared_dtype() -> None:
    # fp16 is meant for CUDA; CPU half matmul exists in torch, so the casting path is testable.
    network = digits_network(seed=5)
    pixels = digits_pixels(4)
    declared = (TensorMeta("logits", "FP32", (-1, 10)),)
    half = TorchPredictor(
        digits_network(seed=5).half(), torch.device("cpu"), ["x"], declared, half=True
    )
    outputs = half.predict(pixels, None)
    assert outputs["logits"].dtype == np.float32
    np.testing.assert_allclose(outputs["logits"], logits_of(network, pixels), rtol=0.05, atol=0.05)


async def test_fp16_on_cpu_is_ignored_and_serves_full_precision(
    make_runtime: MakeRuntime, digits_model: DigitsModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="orchard.inference.pytorch"):
        async with make_runtime(
            {"digits": str(digits_model.path)}, torch_fp16=True, device="cpu"
        ) as runtime:
            pixels = digits_pixels(2)
            reply = await runtime.client.post("/v2/models/digits/infer", json=tensor_body(pixels))
            assert reply.status_code == 200, reply.text
            data = np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
            np.testing.assert_allclose(
                data, logits_of(digits_model.network, pixels), rtol=1e-5, atol=1e-6
            )
    assert "fp16 asked for" in caplog.text
