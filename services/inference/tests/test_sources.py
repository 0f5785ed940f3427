"""Where models come from: registry URIs against a real MLflow server (aliases resolve to
concrete versions), and local folders laid out as KServe's storage initializer fills
``/mnt/models``."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

from orchard_core.oip import decode_infer_response
from orchard_inference import InferenceSettings, MlflowModelSource
from orchard_inference.sources import find_model

from .conftest import MakeRuntime
from .factories import (
    CLOUDPICKLE,
    CreditModel,
    DigitsModel,
    column_body,
    credit_frame,
    credit_pipeline,
    credit_signature,
    digits_pixels,
    logits_of,
    tensor_body,
)

NAME = "inference-credit"


@pytest.fixture(scope="module")
def registry(mlflow_server: Any) -> Iterator[MlflowClient]:
    """Two registered versions of a credit model; ``champion`` points at version 1."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        client = MlflowClient(mlflow_server.url)
        mlflow.set_experiment("orchard-inference-tests")
        for seed in (0, 1):
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    credit_pipeline(seed),
                    name="model",
                    signature=credit_signature(),
                    registered_model_name=NAME,
                    pip_requirements=["scikit-learn"],
                    serialization_format=CLOUDPICKLE,
                )
        client.set_registered_model_alias(NAME, "champion", "1")
        yield client
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def tracking_env(registry: MlflowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime finds the registry the standard way, through MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)


def test_uris_resolve_to_registry_versions(registry: MlflowClient) -> None:
    source = MlflowModelSource(registry.tracking_uri)
    assert source.resolve(f"models:/{NAME}@champion").version == "1"
    assert source.resolve(f"models:/{NAME}/2").version == "2"
    assert source.resolve(f"models:/{NAME}/latest").version == "2"
    with pytest.raises(MlflowException, match=r"not found|RESOURCE_DOES_NOT_EXIST"):
        source.resolve(f"models:/{NAME}/9")
    with pytest.raises(ValueError, match="neither"):
        source.resolve(f"models:/{NAME}")


async def test_an_alias_is_served_as_its_concrete_version(
    make_runtime: MakeRuntime, tracking_env: None
) -> None:
    frame = credit_frame(6, seed=12)
    expected = {v: mlflow.sklearn.load_model(f"models:/{NAME}/{v}") for v in ("1", "2")}
    async with make_runtime({"credit-risk": f"models:/{NAME}@champion"}) as runtime:
        client = runtime.client
        assert (await client.get("/v2/health/ready")).status_code == 200
        reply = await client.post("/v2/models/credit-risk/infer", json=column_body(frame))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-orchard-model-version"] == "1"
        body = decode_infer_response(reply.content)
        assert body.model_version == "1"
        assert body.output("predict").data.tolist() == expected["1"].predict(frame).tolist()
        versioned = await client.post(
            "/v2/models/credit-risk/versions/1/infer", json=column_body(frame)
        )
        assert versioned.status_code == 200
        assert (await client.get("/v2/models/credit-risk/versions/2")).status_code == 404

        load = {"parameters": {"uri": f"models:/{NAME}/2"}}
        loaded = await client.post("/v2/repository/models/credit-risk/load", json=load)
        assert loaded.json()["version"] == "2"
        reply = await client.post("/v2/models/credit-risk/infer", json=column_body(frame))
        assert reply.headers["x-orchard-model-version"] == "2"
        proba = decode_infer_response(reply.content).output("predict_proba").data
        assert proba.tolist() == expected["2"].predict_proba(frame).tolist()


async def test_an_unknown_alias_fails_the_model_with_the_registry_reason(
    make_runtime: MakeRuntime, tracking_env: None
) -> None:
    async with make_runtime({"credit-risk": f"models:/{NAME}@nobody"}) as runtime:
        metadata = (await runtime.client.get("/v2/models/credit-risk")).json()
        assert metadata["state"] == "FAILED"
        assert "nobody" in metadata["reason"]
        reply = await runtime.client.post(
            "/v2/models/credit-risk/infer", json=column_body(credit_frame(1))
        )
        assert reply.status_code == 503
        # Without a body or configured URI, load falls back to the champion alias.
        loaded = await runtime.client.post("/v2/repository/models/inference-credit/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["uri"] == f"models:/{NAME}@champion"
        assert loaded.json()["version"] == "1"


# -- KServe's storage-initializer layout (/mnt/models) ------------------------------------------


def _iris_like(seed: int = 0) -> tuple[LogisticRegression, np.ndarray]:
    """A plain estimator on four numeric features, as KServe's sklearn examples serve."""
    rows = np.random.default_rng(seed).normal(size=(60, 4))
    return LogisticRegression().fit(rows, (rows[:, 0] + rows[:, 1] > 0).astype(np.int64)), rows


@pytest.fixture
def mnt_models(tmp_path: Path) -> Path:
    """An empty folder standing in for /mnt/models."""
    path = tmp_path / "mnt" / "models"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("nested", [False, True], ids=["mlflow-folder", "one-subfolder"])
async def test_a_kserve_model_dir_with_an_mlflow_model_serves_under_the_model_name(
    make_runtime: MakeRuntime, credit_model: CreditModel, mnt_models: Path, nested: bool
) -> None:
    target = mnt_models / "credit-risk" if nested else mnt_models
    shutil.copytree(credit_model.path, target, dirs_exist_ok=True)
    (mnt_models / ".gitkeep").touch()  # dot-files left by uploads are not models
    frame = credit_frame(5, seed=3)
    async with make_runtime({}, model_dir=str(mnt_models), model_name="credit") as runtime:
        assert (await runtime.client.get("/v2/health/ready")).status_code == 200
        reply = await runtime.client.post("/v2/models/credit/infer", json=column_body(frame))
        assert reply.status_code == 200, reply.text
        predicted = decode_infer_response(reply.content).output("predict").data
        assert predicted.tolist() == credit_model.pipeline.predict(frame).tolist()


@pytest.mark.parametrize("file_name", ["model.joblib", "model.pkl"])
async def test_a_bare_sklearn_file_serves_on_v1_and_v2(
    make_runtime: MakeRuntime, mnt_models: Path, file_name: str
) -> None:
    estimator, rows = _iris_like()
    if file_name.endswith(".joblib"):
        joblib.dump(estimator, mnt_models / file_name)
    else:
        with (mnt_models / file_name).open("wb") as out:
            pickle.dump(estimator, out)
    async with make_runtime({}, model_dir=str(mnt_models), model_name="iris") as runtime:
        client = runtime.client
        metadata = (await client.get("/v2/models/iris")).json()
        assert metadata["state"] == "READY", metadata
        assert metadata["platform"] == "sklearn"
        v1 = await client.post("/v1/models/iris:predict", json={"instances": rows[:4].tolist()})
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == estimator.predict(rows[:4]).tolist()
        body = tensor_body(rows[:4], name="input-0", datatype="FP64")
        v2 = await client.post("/v2/models/iris/infer", json=body)
        assert v2.status_code == 200, v2.text
        proba = decode_infer_response(v2.content).output("predict_proba").data
        np.testing.assert_allclose(proba, estimator.predict_proba(rows[:4]))
    # The wrapped MLflow copy lived in a work folder; /mnt/models is left as KServe wrote it.
    assert sorted(await asyncio.to_thread(os.listdir, mnt_models)) == [file_name]


# torch deprecates TorchScript (the format stays common in model stores), and mlflow.pytorch
# reads it through torch.load, which says so.
@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:'torch.load' received a zip file:UserWarning")
async def test_a_bare_torchscript_file_serves(
    make_runtime: MakeRuntime, digits_model: DigitsModel, mnt_models: Path
) -> None:
    torch.jit.save(torch.jit.script(digits_model.network), str(mnt_models / "model.pt"))
    pixels = digits_pixels(3, seed=5)
    async with make_runtime({}, model_dir=str(mnt_models), model_name="digits") as runtime:
        reply = await runtime.client.post("/v2/models/digits/infer", json=tensor_body(pixels))
        assert reply.status_code == 200, reply.text
        (logits,) = decode_infer_response(reply.content).outputs
        np.testing.assert_allclose(logits.data, logits_of(digits_model.network, pixels), rtol=1e-5)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "found: nothing"),
        (["notes.txt"], "found: notes.txt"),
        (["a.joblib", "b.pkl"], "more than one model file"),
    ],
)
def test_an_unrecognised_model_dir_says_what_it_found(
    mnt_models: Path, files: list[str], message: str
) -> None:
    for name in files:
        (mnt_models / name).write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=message):
        MlflowModelSource().resolve(str(mnt_models))


def test_find_model_accepts_a_model_file_path(mnt_models: Path) -> None:
    estimator, _ = _iris_like()
    joblib.dump(estimator, mnt_models / "model.joblib")
    assert find_model(str(mnt_models / "model.joblib")) == (
        str(mnt_models),
        str(mnt_models / "model.joblib"),
    )
    with pytest.raises(FileNotFoundError, match="no such directory"):
        find_model(str(mnt_models / "missing"))


async def test_a_model_dir_without_a_model_keeps_the_runtime_unready(
    make_runtime: MakeRuntime, mnt_models: Path
) -> None:
    async with make_runtime({}, model_dir=str(mnt_models), model_name="empty") as runtime:
        ready = await runtime.client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert str(mnt_models) in ready.text
        assert (await runtime.client.get("/v2/health/live")).status_code == 200


def test_the_model_dir_joins_the_configured_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_INFERENCE_MODELS", '{"other": "/models/other"}')
    monkeypatch.setenv("ORCHARD_INFERENCE_MODEL_DIR", "/mnt/models")
    monkeypatch.setenv("ORCHARD_INFERENCE_MODEL_NAME", "credit")
    assert InferenceSettings().startup_models == {
        "other": "/models/other",
        "credit": "/mnt/models",
    }
    monkeypatch.setenv("ORCHARD_INFERENCE_MODEL_DIR", "")
    assert InferenceSettings().startup_models == {"other": "/models/other"}
    monkeypatch.delenv("ORCHARD_INFERENCE_MODEL_NAME")
    monkeypatch.setenv("ORCHARD_INFERENCE_MODEL_DIR", "/mnt/models")
    assert InferenceSettings().startup_models["model"] == "/mnt/models"  # KServe's default name
