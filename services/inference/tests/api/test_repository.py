"""The repository extension (load, unload, index) and models that fail to load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from orchard_core.oip import decode_infer_response
from orchard_inference import ModelLocation

from ..conftest import MakeRuntime, Runtime
from ..factories import (
    CreditModel,
    DigitsModel,
    column_body,
    credit_frame,
    digits_pixels,
    tensor_body,
)


@pytest.fixture(scope="module")
def broken_model(credit_model: CreditModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow model directory whose serialized model is missing: it resolves, then fails."""
    path = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(credit_model.path, path)
    (serialized,) = path.glob("model.*")  # model.skops or model.pkl, by MLflow's default
    serialized.unlink()
    return path


async def test_a_model_that_fails_at_start_up_is_failed_and_the_others_serve(
    make_runtime: MakeRuntime, digits_model: DigitsModel, broken_model: Path
) -> None:
    models = {"digits": str(digits_model.path), "credit-risk": str(broken_model)}
    async with make_runtime(models) as runtime:
        client = runtime.client
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "model 'credit-risk' failed to load" in ready.json()["error"]
        readyz = await client.get("/readyz")
        assert readyz.status_code == 503
        assert "model 'credit-risk' failed to load" in readyz.json()["error"]

        metadata = (await client.get("/v2/models/credit-risk")).json()
        assert metadata["state"] == "FAILED"
        assert "model." in metadata["reason"]
        model_ready = await client.get("/v2/models/credit-risk/ready")
        assert model_ready.status_code == 503
        assert model_ready.json()["state"] == "FAILED"
        assert (await client.get("/v2/models/credit-risk/versions/1/ready")).status_code == 503

        infer = await client.post("/v2/models/credit-risk/infer", json=column_body(credit_frame(1)))
        assert infer.status_code == 503
        assert infer.json()["error"].startswith("model 'credit-risk' failed to load: ")
        v1 = await client.post("/v1/models/credit-risk:predict", json={"instances": [[1, 2, "a"]]})
        assert v1.status_code == 503

        digits = await client.post("/v2/models/digits/infer", json=tensor_body(digits_pixels(1)))
        assert digits.status_code == 200
        assert (
            runtime.metric(
                "orchard_inference_model_loads_total", model="credit-risk", outcome="failure"
            )
            == 1
        )
        state = {"orchard_inference_model_state": "FAILED"}
        assert (
            runtime.metric(
                "orchard_inference_model_state", model="credit-risk", version="1", **state
            )
            == 1
        )


async def test_a_missing_directory_fails_without_a_version(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    async with make_runtime({"ghost": str(tmp_path / "nothing")}) as runtime:
        metadata = (await runtime.client.get("/v2/models/ghost")).json()
        assert metadata["state"] == "FAILED"
        assert metadata["versions"] == []
        assert "no MLflow model at" in metadata["reason"]


async def test_load_from_a_uri_in_the_body_then_unload(
    runtime: Runtime, credit_model: CreditModel
) -> None:
    client = runtime.client
    body = {"parameters": {"uri": str(credit_model.path)}}
    loaded = await client.post("/v2/repository/models/second/load", json=body)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["version"] == "1"
    assert "second" in (await client.get("/v2/models")).json()["models"]
    infer = await client.post("/v2/models/second/infer", json=column_body(credit_frame(2)))
    assert infer.status_code == 200

    unloaded = await client.post("/v2/repository/models/second/unload")
    assert unloaded.json() == {"name": "second", "unload": True}
    assert (await client.post("/v2/models/second/infer", json={})).status_code == 404
    assert (await client.post("/v2/repository/models/second/unload")).status_code == 404


async def test_an_unloaded_start_up_model_reloads_from_its_configured_uri(runtime: Runtime) -> None:
    client = runtime.client
    assert (await client.post("/v2/repository/models/digits/unload")).status_code == 200
    assert (await client.get("/v2/models/digits/ready")).status_code == 404
    assert (await client.get("/v2/health/ready")).status_code == 200  # unloaded on purpose
    reloaded = await client.post("/v2/repository/models/digits/load")
    assert reloaded.status_code == 200, reloaded.text
    assert (await client.get("/v2/models/digits/ready")).status_code == 200


async def test_a_failed_load_answers_503_with_the_reason(runtime: Runtime, tmp_path: Path) -> None:
    body = {"parameters": {"uri": str(tmp_path)}}
    reply = await runtime.client.post("/v2/repository/models/other/load", json=body)
    assert reply.status_code == 503
    assert reply.json()["error"].startswith(
        f"model 'other' failed to load: no MLflow model at {tmp_path}: no MLmodel file"
    )


async def test_a_failed_reload_keeps_the_serving_version(runtime: Runtime, tmp_path: Path) -> None:
    body = {"parameters": {"uri": str(tmp_path)}}
    reply = await runtime.client.post("/v2/repository/models/digits/load", json=body)
    assert reply.status_code == 503
    infer = await runtime.client.post("/v2/models/digits/infer", json=tensor_body(digits_pixels(1)))
    assert infer.status_code == 200
    assert (await runtime.client.get("/v2/health/ready")).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "request body must be a JSON object"),
        (b'{"parameters": 3}', "'parameters' must be a JSON object"),
        (b'{"parameters": {"uri": 3}}', "parameter 'uri' must be a non-empty string"),
    ],
)
async def test_bad_load_bodies_are_400(runtime: Runtime, body: bytes, message: str) -> None:
    reply = await runtime.client.post("/v2/repository/models/x/load", content=body)
    assert reply.status_code == 400
    assert reply.json()["error"] == message


class VersionedSource:
    """A model source whose URIs name a registry version: ``v<version>:<directory>``."""

    def resolve(self, uri: str) -> ModelLocation:
        version, _, path = uri.partition(":")
        if not Path(path, "MLmodel").is_file():
            raise LookupError(f"no model version behind {uri}")
        return ModelLocation(uri, version.removeprefix("v"), path)

    def fetch(self, location: ModelLocation, into: str) -> str:
        assert location.local_path is not None
        return location.local_path


async def test_versions_side_by_side(
    make_runtime: MakeRuntime, credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    """A new version becomes current; older ones keep serving under /versions/{v}."""
    frame = credit_frame(3)
    async with make_runtime({"m": f"v1:{credit_model.path}"}, source=VersionedSource()) as runtime:
        client = runtime.client
        body = {"parameters": {"uri": f"v2:{digits_model.path}"}}
        assert (await client.post("/v2/repository/models/m/load", json=body)).status_code == 200
        assert (await client.get("/v2/models/m")).json()["versions"] == ["1", "2"]

        current = await client.post("/v2/models/m/infer", json=tensor_body(digits_pixels(1)))
        assert current.headers["x-orchard-model-version"] == "2"
        old = await client.post("/v2/models/m/versions/1/infer", json=column_body(frame))
        assert old.headers["x-orchard-model-version"] == "1"
        assert decode_infer_response(old.content).model_version == "1"
        index = (await client.post("/v2/repository/index")).json()
        assert [(e["version"], e["state"], e["current"]) for e in index] == [
            ("1", "READY", False),
            ("2", "READY", True),
        ]

        # Loading a version that is already served switches back to it without reloading.
        again = await client.post(
            "/v2/repository/models/m/load", json={"parameters": {"uri": f"v1:{credit_model.path}"}}
        )
        assert again.json()["version"] == "1"
        assert (await client.get("/v2/models/m")).json()["platform"] == "sklearn"

        unload = {"parameters": {"version": "1"}}
        assert (await client.post("/v2/repository/models/m/unload", json=unload)).status_code == 200
        assert (await client.get("/v2/models/m")).json()["versions"] == ["2"]
        assert (await client.get("/v2/models/m/versions/1")).status_code == 404
        reply = await client.post("/v2/models/m/infer", json=tensor_body(digits_pixels(2)))
        assert reply.headers["x-orchard-model-version"] == "2"
        assert np.asarray(reply.json()["outputs"][0]["shape"]).tolist() == [2, 10]
        assert (
            runtime.metric(
                "orchard_inference_model_inference_seconds_count", model="m", version="1"
            )
            == 0
        )  # the unloaded version's series are gone
