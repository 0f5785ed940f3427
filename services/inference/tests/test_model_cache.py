"""Many models in one process: lazy loading, one load per model, LRU eviction under budgets."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import torch

from orchard_core import new_registry
from orchard_core.oip import InferTensor, decode_infer_response
from orchard_inference import InferenceSettings, ModelLocation, create_app
from orchard_inference.dataplane import ModelRunner
from orchard_inference.flavors import Predictor, default_loaders
from orchard_inference.metrics import InferenceMetrics
from orchard_inference.model import ModelState, ServedModel
from orchard_inference.model_cache import folder_bytes
from orchard_inference.repository import ModelRepository
from orchard_inference.schema import ModelInput
from orchard_inference.sources import MlflowModelSource

from .conftest import Runtime
from .factories import (
    CreditModel,
    DigitsModel,
    column_body,
    credit_frame,
    digits_pixels,
    logits_of,
    tensor_body,
)

WAIT = 10.0  # seconds a test waits for an event before it fails


class CountingSource(MlflowModelSource):
    """The real source, counting fetches (one per load) and able to hold them at a gate.

    ``registry`` maps names to directories served as ``models:/<name>@champion`` (version 3);
    other registry names do not resolve.
    """

    def __init__(self, registry: dict[str, Path] | None = None) -> None:
        super().__init__()
        self.registry = dict(registry or {})
        self.resolves: Counter[str] = Counter()
        self.fetches: Counter[str] = Counter()
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.registry_down = False

    def resolve(self, uri: str) -> ModelLocation:
        self.resolves[uri] += 1
        if uri.startswith("models:/"):
            if self.registry_down:
                raise ConnectionError("registry unreachable: connection refused")
            name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
            if name not in self.registry:
                raise LookupError(f"registered model '{name}' not found")
            return ModelLocation(uri, "3", None, f"models:/{name}/3")
        return super().resolve(uri)

    def fetch(self, location: ModelLocation, into: str) -> str:
        key = location.artifact_uri or location.uri
        self.fetches[key] += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT), "the test never opened the gate"
        if location.artifact_uri is not None and location.artifact_uri.startswith("models:/"):
            name = location.artifact_uri.removeprefix("models:/").split("/")[0]
            return str(self.registry[name])
        return super().fetch(location, into)

    def loads(self, name_or_path: str | Path) -> int:
        """Fetches of a local directory or of registry model ``name``."""
        key = str(name_or_path)
        return sum(
            n for k, n in self.fetches.items() if k == key or k.startswith(f"models:/{key}/")
        )


class HeldRunner:
    """Runs predictions inline, but the first ``hold`` calls wait for ``release``."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = 0

    async def run(
        self,
        served: ServedModel,
        predictor: Predictor,
        data: ModelInput,
        wanted: tuple[str, ...] | None,
    ) -> list[InferTensor]:
        if self.hold:
            self.hold -= 1
            self.entered.set()
            await self.release.wait()
        return served.predict(predictor, data, wanted)


@asynccontextmanager
async def serving(
    models: dict[str, str],
    source: CountingSource,
    runner: ModelRunner | None = None,
    **overrides: Any,
) -> AsyncIterator[Runtime]:
    """A started runtime; unlike ``make_runtime`` it takes a runner, and loads lazily."""
    settings = InferenceSettings(
        **{"models": models, "log_json": False, "load_at_startup": False, **overrides}
    )
    registry = new_registry()
    app = create_app(settings, registry=registry, source=source, runner=runner)
    torch_threads = torch.get_num_threads()
    try:
        async with app.router.lifespan_context(app):
            await app.state.dataplane.repository.started()
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://runtime") as client:
                yield Runtime(app, client, registry)
    finally:
        torch.set_num_threads(torch_threads)


async def infer_credit(runtime: Runtime, name: str) -> httpx2.Response:
    return await runtime.client.post(f"/v2/models/{name}/infer", json=column_body(credit_frame(2)))


def states(runtime: Runtime) -> dict[str, str]:
    """The state of each model's current version."""
    return {e["name"]: e["state"] for e in runtime.dataplane.index() if e["current"]}


@pytest.fixture(scope="module")
def broken_model(credit_model: CreditModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow model directory whose serialized model is missing: it resolves, then fails."""
    path = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(credit_model.path, path)
    (serialized,) = path.glob("model.*")
    serialized.unlink()
    return path


# -- lazy loading ------------------------------------------------------------------------------


async def test_a_configured_model_loads_on_its_first_request(
    credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    source = CountingSource()
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    async with serving(models, source) as runtime:
        assert runtime.dataplane.repository.names() == []
        assert (await runtime.client.get("/v2/health/ready")).status_code == 200
        assert runtime.metric("orchard_inference_models_loaded") == 0

        reply = await infer_credit(runtime, "credit-risk")
        assert reply.status_code == 200, reply.text
        frame = credit_frame(2)
        output = decode_infer_response(reply.content).outputs[0]
        assert output.name == "predict"
        assert np.array_equal(output.data, credit_model.pipeline.predict(frame))
        assert (await runtime.client.get("/v2/models/digits/ready")).status_code == 200
        assert (await runtime.client.get("/v2/models/credit-risk")).json()["state"] == "READY"
        assert source.loads(credit_model.path) == 1
        assert source.loads(digits_model.path) == 1
        assert runtime.metric("orchard_inference_models_loaded") == 2


async def test_concurrent_first_requests_load_the_model_once(credit_model: CreditModel) -> None:
    source = CountingSource()
    source.gate = threading.Event()
    async with serving({"credit-risk": str(credit_model.path)}, source) as runtime:
        client = runtime.client
        requests = [
            *(infer_credit(runtime, "credit-risk") for _ in range(12)),
            *(client.get("/v2/models/credit-risk") for _ in range(4)),
            *(client.get("/v2/models/credit-risk/ready") for _ in range(4)),
        ]
        replies = asyncio.gather(*requests)
        assert await asyncio.to_thread(source.entered.wait, WAIT)
        source.gate.set()
        statuses = [r.status_code for r in await replies]
        assert statuses == [200] * 20
        assert source.loads(credit_model.path) == 1
        assert (
            runtime.metric(
                "orchard_inference_model_loads_total", model="credit-risk", outcome="success"
            )
            == 1
        )


async def test_a_registry_name_loads_its_champion_on_demand_and_an_unknown_one_is_404(
    credit_model: CreditModel,
) -> None:
    source = CountingSource(registry={"fraud": credit_model.path})
    async with serving({}, source) as runtime:
        reply = await infer_credit(runtime, "fraud")
        assert reply.status_code == 200, reply.text
        assert reply.headers["X-Orchard-Model-Version"] == "3"
        assert (await runtime.client.get("/v2/models/fraud")).json()["versions"] == ["3"]

        for _ in range(3):
            ghost = await infer_credit(runtime, "ghost")
            assert ghost.status_code == 404
            assert ghost.json()["error"].startswith(
                "model 'ghost' is not loaded here, and models:/ghost@champion does not resolve"
            )
        assert (await runtime.client.get("/v2/models/ghost/ready")).status_code == 404
        # Remembered for the back-off: an unknown name does not hammer the registry.
        assert source.resolves["models:/ghost@champion"] == 1
        assert "ghost" not in runtime.dataplane.repository.names()


async def test_a_registry_outage_is_503_not_404(credit_model: CreditModel) -> None:
    source = CountingSource(registry={"fraud": credit_model.path})
    source.registry_down = True
    async with serving({}, source, load_retry_seconds=0) as runtime:
        reply = await infer_credit(runtime, "fraud")
        assert reply.status_code == 503
        assert "registry unreachable" in reply.json()["error"]
        assert (await runtime.client.get("/v2/models/fraud")).json()["state"] == "FAILED"

        source.registry_down = False  # back: the next request loads it
        assert (await infer_credit(runtime, "fraud")).status_code == 200


async def test_registry_lookups_can_be_switched_off(credit_model: CreditModel) -> None:
    source = CountingSource(registry={"fraud": credit_model.path})
    async with serving({}, source, lazy_load_registry=False) as runtime:
        reply = await infer_credit(runtime, "fraud")
        assert reply.status_code == 404
        assert reply.json() == {"error": "model 'fraud' is not loaded here"}
        assert source.resolves == Counter()


async def test_a_failed_lazy_load_is_503_with_its_reason_and_is_not_retried_at_once(
    broken_model: Path, digits_model: DigitsModel
) -> None:
    source = CountingSource()
    models = {"credit-risk": str(broken_model), "digits": str(digits_model.path)}
    async with serving(models, source, load_retry_seconds=600) as runtime:
        client = runtime.client
        for _ in range(3):
            reply = await infer_credit(runtime, "credit-risk")
            assert reply.status_code == 503
            assert reply.json()["error"].startswith("model 'credit-risk' failed to load: ")
        assert source.loads(broken_model) == 1  # not hammered on every request

        metadata = (await client.get("/v2/models/credit-risk")).json()
        assert metadata["state"] == "FAILED"
        assert metadata["reason"]
        ready = await client.get("/v2/models/credit-risk/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == metadata["reason"]

        digits = await client.post("/v2/models/digits/infer", json=tensor_body(digits_pixels(1)))
        assert digits.status_code == 200
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (
            runtime.metric(
                "orchard_inference_model_loads_total", model="credit-risk", outcome="failure"
            )
            == 1
        )


async def test_a_failed_lazy_load_is_retried_after_the_back_off(
    credit_model: CreditModel, tmp_path: Path
) -> None:
    path = tmp_path / "model"
    shutil.copytree(credit_model.path, path)
    (serialized,) = path.glob("model.*")
    kept = tmp_path / serialized.name
    serialized.rename(kept)
    source = CountingSource()
    async with serving({"credit-risk": str(path)}, source, load_retry_seconds=0) as runtime:
        assert (await infer_credit(runtime, "credit-risk")).status_code == 503
        assert (await infer_credit(runtime, "credit-risk")).status_code == 503
        assert source.loads(path) == 2  # no back-off configured: every request retries

        kept.rename(serialized)  # the model is fixed
        reply = await infer_credit(runtime, "credit-risk")
        assert reply.status_code == 200, reply.text
        assert (await runtime.client.get("/v2/models/credit-risk")).json()["state"] == "READY"


# -- eviction ----------------------------------------------------------------------------------


async def test_the_least_recently_used_model_is_evicted_past_the_model_count(
    credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    source = CountingSource()
    credit = str(credit_model.path)
    models = {"a": credit, "b": credit, "c": str(digits_model.path)}
    async with serving(models, source, max_models=2) as runtime:
        assert (await infer_credit(runtime, "a")).status_code == 200
        assert (await infer_credit(runtime, "b")).status_code == 200
        assert (await infer_credit(runtime, "a")).status_code == 200  # b is now the LRU
        pixels = tensor_body(digits_pixels(1))
        assert (await runtime.client.post("/v2/models/c/infer", json=pixels)).status_code == 200
        assert states(runtime) == {"a": "READY", "b": "EVICTED", "c": "READY"}
        assert runtime.metric("orchard_inference_models_loaded") == 2
        assert runtime.metric("orchard_inference_model_evictions_total", model="b") == 1
        state = {"orchard_inference_model_state": "EVICTED"}
        assert runtime.metric("orchard_inference_model_state", model="b", version="1", **state)
        evicted = (await runtime.client.post("/v2/repository/index")).json()
        assert {"name": "b", "version": "1", "state": "EVICTED", "current": True} in evicted

        # b loads again on its next request; a is the LRU now.
        reply = await infer_credit(runtime, "b")
        assert reply.status_code == 200, reply.text
        output = decode_infer_response(reply.content).outputs[0]
        assert np.array_equal(output.data, credit_model.pipeline.predict(credit_frame(2)))
        assert states(runtime) == {"a": "EVICTED", "b": "READY", "c": "READY"}
        assert runtime.metric("orchard_inference_model_evictions_total", model="a") == 1
        assert runtime.metric("orchard_inference_models_loaded") == 2
        assert source.fetches[credit] == 3  # a, b, and b again


async def test_start_up_models_count_and_an_evicted_one_keeps_the_server_ready(
    credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    source = CountingSource()
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    async with serving(models, source, max_models=1, load_at_startup=True) as runtime:
        assert runtime.metric("orchard_inference_models_loaded") == 1
        assert sorted(states(runtime).values()) == ["EVICTED", "READY"]
        assert (await runtime.client.get("/v2/health/ready")).status_code == 200
        for name in ("credit-risk", "digits"):
            assert (await runtime.client.get(f"/v2/models/{name}/ready")).status_code == 200
        assert runtime.metric("orchard_inference_models_loaded") == 1


async def test_the_memory_budget_evicts_by_the_models_file_sizes(
    credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    credit, digits = folder_bytes(str(credit_model.path)), folder_bytes(str(digits_model.path))
    budget_mb = (credit + digits + credit // 2) / 2**20  # room for one credit and one digits
    source = CountingSource()
    models = {"a": str(credit_model.path), "b": str(credit_model.path)}
    models["d"] = str(digits_model.path)
    async with serving(models, source, memory_budget_mb=budget_mb) as runtime:
        assert (await infer_credit(runtime, "a")).status_code == 200
        pixels = tensor_body(digits_pixels(1))
        assert (await runtime.client.post("/v2/models/d/infer", json=pixels)).status_code == 200
        assert runtime.metric("orchard_inference_models_memory_bytes") == credit + digits
        assert (await infer_credit(runtime, "b")).status_code == 200
        assert states(runtime) == {"a": "EVICTED", "d": "READY", "b": "READY"}
        assert runtime.metric("orchard_inference_models_memory_bytes") == credit + digits
        assert runtime.metric("orchard_inference_model_evictions_total", model="a") == 1


async def test_a_model_with_requests_in_flight_is_not_evicted(
    credit_model: CreditModel, digits_model: DigitsModel
) -> None:
    source = CountingSource()
    runner = HeldRunner()
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    async with serving(models, source, runner=runner, max_models=1) as runtime:
        assert (await infer_credit(runtime, "credit-risk")).status_code == 200
        runner.hold = 1
        held = asyncio.create_task(infer_credit(runtime, "credit-risk"))
        await asyncio.wait_for(runner.entered.wait(), WAIT)

        pixels = digits_pixels(2)
        reply = await runtime.client.post("/v2/models/digits/infer", json=tensor_body(pixels))
        assert reply.status_code == 200
        (logits,) = decode_infer_response(reply.content).outputs
        assert np.allclose(logits.data, logits_of(digits_model.network, pixels), atol=1e-5)
        # Over budget, but credit-risk is computing: both stay until its request is done.
        assert states(runtime) == {"credit-risk": "READY", "digits": "READY"}
        assert runtime.metric("orchard_inference_models_loaded") == 2

        runner.release.set()
        assert (await held).status_code == 200
        assert states(runtime) == {"credit-risk": "EVICTED", "digits": "READY"}
        assert runtime.metric("orchard_inference_models_loaded") == 1


async def test_process_memory_and_model_gauges_are_exported(credit_model: CreditModel) -> None:
    source = CountingSource()
    async with serving({"credit-risk": str(credit_model.path)}, source, max_models=1) as runtime:
        assert (await infer_credit(runtime, "credit-risk")).status_code == 200
        text = (await runtime.client.get("/metrics")).text
        assert "orchard_inference_models_loaded 1.0" in text
        assert runtime.metric("orchard_inference_resident_memory_bytes") > 10 * 2**20
        assert "# TYPE orchard_inference_model_evictions_total counter" in text


async def test_the_retry_back_off_doubles_with_each_failure(
    credit_model: CreditModel, tmp_path: Path
) -> None:
    path = tmp_path / "model"
    shutil.copytree(credit_model.path, path)
    (serialized,) = path.glob("model.*")
    kept = tmp_path / serialized.name
    serialized.rename(kept)
    now = [0.0]
    source = CountingSource()
    repository = ModelRepository(
        source,
        default_loaders(),
        InferenceMetrics(new_registry()),
        configured={"m": str(path)},
        retry_seconds=10,
        clock=lambda: now[0],
    )
    try:
        attempts = []
        for moment in (0, 9.9, 10, 29.9, 30, 69.9):
            now[0] = moment
            assert (await repository.obtain("m")).state is ModelState.FAILED
            attempts.append(source.loads(path))
        assert attempts == [1, 1, 2, 2, 3, 3]  # after 10 s, then 20 s, then 40 s

        kept.rename(serialized)
        now[0] = 70
        assert (await repository.obtain("m")).state is ModelState.READY
        assert source.loads(path) == 4
    finally:
        await repository.close()
