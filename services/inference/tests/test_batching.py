"""Adaptive batching through the real app: merged calls, own rows back, failures alone.

Concurrency is forced, not hoped for: a ``GatedPredictor`` holds the first model call in the
worker thread until every other request has reached the runner (``ArrivalRunner``), so the
queued requests form the next batch deterministically. No test waits on the clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import numpy as np
import pytest
import torch
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from orchard_core import load_settings, new_registry
from orchard_core.oip import decode_infer_response
from orchard_inference import InferenceSettings, Predictor, ServedModel, create_app
from orchard_inference.batching import BatchingRunner, BatchPolicy, merge_key
from orchard_inference.flavors import Outputs
from orchard_inference.schema import ModelInput, TensorMeta

from .conftest import MakeRuntime
from .factories import (
    CreditModel,
    DigitsModel,
    column_body,
    credit_frame,
    digits_pixels,
    logits_of,
    tensor_body,
)

LABELS = {"version": "1"}
#: A pixel value no real digit has: the poisoned-model test's model raises on it.
POISON = -1.0


class GatedPredictor:
    """Wraps a real predictor: records rows per call, holds the first call until released."""

    def __init__(self, inner: Predictor, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.platform = inner.platform
        self.outputs = inner.outputs
        self.rows: list[int] = []
        self.torch_threads: list[int] = []
        self.started = asyncio.Event()
        self.release = threading.Event()
        self._loop = loop

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        first = not self.rows
        self.rows.append(len(data) if not isinstance(data, dict) else -1)
        if first:
            self._loop.call_soon_threadsafe(self.started.set)
            if not self.release.wait(timeout=30):  # a broken test fails, never hangs
                raise RuntimeError("the test never released the first call")
        if isinstance(data, np.ndarray) and (data == POISON).any():
            raise ValueError("poisoned row")
        outputs = self.inner.predict(data, wanted)
        self.torch_threads.append(torch.get_num_threads())
        return outputs


class ArrivalRunner:
    """Wraps the batching runner: ``all_arrived`` is set once ``expected`` requests are queued.

    ``BatchingRunner.run`` queues a request before its first ``await``, so when the waiter
    wakes up every counted request is in the queue.
    """

    def __init__(self, inner: BatchingRunner, expected: int) -> None:
        self.inner = inner
        self.expected = expected
        self.arrived = 0
        self.all_arrived = asyncio.Event()

    async def run(
        self,
        served: ServedModel,
        predictor: Predictor,
        data: ModelInput,
        wanted: tuple[str, ...] | None,
    ) -> Any:
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_arrived.set()
        return await self.inner.run(served, predictor, data, wanted)


@dataclass
class GatedRuntime:
    app: FastAPI
    client: httpx2.AsyncClient
    registry: CollectorRegistry
    runner: ArrivalRunner
    gates: dict[str, GatedPredictor] = field(default_factory=dict)

    def metric(self, name: str, model: str) -> float:
        return self.registry.get_sample_value(name, {"model": model, **LABELS}) or 0.0

    async def post_all(self, model: str, bodies: list[dict[str, Any]]) -> list[httpx2.Response]:
        """Send the first body, hold its call, queue the rest behind it, then release."""
        gate = self.gates[model]
        url = f"/v2/models/{model}/infer"
        first = asyncio.create_task(self.client.post(url, json=bodies[0]))
        await gate.started.wait()
        rest = [asyncio.create_task(self.client.post(url, json=b)) for b in bodies[1:]]
        await self.runner.all_arrived.wait()
        gate.release.set()
        return [await first, *[await task for task in rest]]


MakeGated = Callable[..., AbstractAsyncContextManager[GatedRuntime]]


@pytest.fixture
def make_gated(credit_model: CreditModel, digits_model: DigitsModel) -> MakeGated:
    """A runtime whose models are wrapped in ``GatedPredictor`` (``expected`` requests)."""

    @asynccontextmanager
    async def start(expected: int, **overrides: Any) -> AsyncIterator[GatedRuntime]:
        models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
        settings = InferenceSettings(models=models, log_json=False, **overrides)
        registry = new_registry()
        batching = BatchingRunner.from_settings(settings)
        runner = ArrivalRunner(batching, expected)
        app = create_app(settings, registry=registry, runner=runner)
        torch_threads = torch.get_num_threads()
        try:
            async with app.router.lifespan_context(app):
                repository = app.state.dataplane.repository
                await repository.started()
                gates = {}
                for name in models:
                    served = repository.get(name)
                    gates[name] = GatedPredictor(served.predictor, asyncio.get_running_loop())
                    served.predictor = gates[name]
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(transport=transport, base_url="http://rt") as client:
                    yield GatedRuntime(app, client, registry, runner, gates)
        finally:
            batching.close()
            torch.set_num_threads(torch_threads)

    return start


async def test_concurrent_column_requests_merge_and_each_gets_its_own_rows(
    make_gated: MakeGated, credit_model: CreditModel
) -> None:
    frames = [credit_frame(1 + i % 3, seed=i) for i in range(12)]
    async with make_gated(len(frames), batch_max_size=64) as runtime:
        replies = await runtime.post_all("credit-risk", [column_body(f) for f in frames])
        gate = runtime.gates["credit-risk"]
        requests = runtime.metric("orchard_inference_batch_requests_sum", "credit-risk")
        calls = runtime.metric("orchard_inference_batch_requests_count", "credit-risk")
    for frame, reply in zip(frames, replies, strict=True):
        assert reply.status_code == 200, reply.text
        predict, proba = decode_infer_response(reply.content).outputs
        np.testing.assert_array_equal(predict.data, credit_model.pipeline.predict(frame))
        expected = credit_model.pipeline.predict_proba(frame)
        np.testing.assert_allclose(proba.data, expected, rtol=1e-12)
    # The held first call, then everything that queued behind it in one call.
    assert gate.rows == [len(frames[0]), sum(len(f) for f in frames[1:])]
    assert (requests, calls) == (len(frames), 2)


async def test_concurrent_tensor_requests_merge_and_each_gets_its_own_rows(
    make_gated: MakeGated, digits_model: DigitsModel
) -> None:
    batches = [digits_pixels(1 + i % 4, seed=i) for i in range(16)]
    # 3 intra-op threads: neither torch's default here nor in a fresh thread (the cores).
    async with make_gated(len(batches), torch_threads=3) as runtime:
        replies = await runtime.post_all("digits", [tensor_body(p) for p in batches])
        gate = runtime.gates["digits"]
        largest = runtime.metric("orchard_inference_batch_size_sum", "digits")
    for pixels, reply in zip(batches, replies, strict=True):
        assert reply.status_code == 200, reply.text
        (logits,) = decode_infer_response(reply.content).outputs
        assert logits.shape == (len(pixels), 10)
        expected = logits_of(digits_model.network, pixels)
        np.testing.assert_allclose(logits.data, expected, rtol=1e-5, atol=1e-6)
    assert gate.rows == [len(batches[0]), sum(len(p) for p in batches[1:])]
    assert largest == sum(len(p) for p in batches)
    # torch threads are per thread: the worker thread gets ORCHARD_INFERENCE_TORCH_THREADS.
    assert set(gate.torch_threads) == {3}


async def test_batches_hold_at_most_max_size_rows_and_a_larger_request_runs_alone(
    make_gated: MakeGated,
) -> None:
    sizes = [1, 2, 2, 9, 1, 3]  # 9 > max_size: alone; the rest in arrival order, <= 4 rows
    bodies = [tensor_body(digits_pixels(n, seed=n)) for n in sizes]
    async with make_gated(len(sizes), batch_max_size=4, batch_max_delay_ms=0) as runtime:
        replies = await runtime.post_all("digits", bodies)
        gate = runtime.gates["digits"]
    assert all(r.status_code == 200 for r in replies)
    assert gate.rows == [1, 4, 9, 4]


async def test_requests_for_other_outputs_do_not_merge(make_gated: MakeGated) -> None:
    wanted = [None, "predict", "predict_proba", "predict", None]
    bodies = [
        column_body(credit_frame(1, seed=i), **({"outputs": [{"name": w}]} if w else {}))
        for i, w in enumerate(wanted)
    ]
    async with make_gated(len(bodies), batch_max_delay_ms=0) as runtime:
        replies = await runtime.post_all("credit-risk", bodies)
        gate = runtime.gates["credit-risk"]
    for want, reply in zip(wanted, replies, strict=True):
        names = [o["name"] for o in reply.json()["outputs"]]
        assert names == ([want] if want else ["predict", "predict_proba"])
    # first; the two "predict" requests; "predict_proba"; the second all-outputs one.
    assert gate.rows == [1, 2, 1, 1]


async def test_a_poisoned_request_fails_alone_and_its_batch_mates_succeed(
    make_gated: MakeGated, digits_model: DigitsModel
) -> None:
    batches = [digits_pixels(2, seed=i) for i in range(5)]
    batches[2][1, 7] = POISON
    async with make_gated(len(batches)) as runtime:
        replies = await runtime.post_all("digits", [tensor_body(p) for p in batches])
        fallbacks = runtime.metric("orchard_inference_batch_fallbacks_total", "digits")
        errors = runtime.registry.get_sample_value(
            "orchard_inference_model_requests_total",
            {"model": "digits", "version": "1", "outcome": "error"},
        )
    assert replies[2].status_code == 500
    assert "poisoned row" in replies[2].json()["error"]
    for index in (0, 1, 3, 4):
        assert replies[index].status_code == 200, replies[index].text
        (logits,) = decode_infer_response(replies[index].content).outputs
        expected = logits_of(digits_model.network, batches[index])
        np.testing.assert_allclose(logits.data, expected, rtol=1e-5, atol=1e-6)
    assert (fallbacks, errors) == (1, 1)


async def test_an_idle_model_answers_at_once_without_waiting_for_the_delay(
    make_runtime: MakeRuntime, credit_model: CreditModel
) -> None:
    # A 1 s delay: a request held for batch mates would show a queue wait of 1 s or more.
    models = {"credit-risk": str(credit_model.path)}
    async with make_runtime(models, batch_max_delay_ms=1000) as runtime:
        for seed in range(3):  # idle before each: none of them waits
            body = column_body(credit_frame(1, seed=seed))
            reply = await runtime.client.post("/v2/models/credit-risk/infer", json=body)
            assert reply.status_code == 200, reply.text
        labels = {"model": "credit-risk", **LABELS}
        waited = runtime.metric("orchard_inference_queue_wait_seconds_sum", **labels)
        queued = runtime.metric("orchard_inference_queue_wait_seconds_count", **labels)
        requests = runtime.metric("orchard_inference_batch_requests_sum", **labels)
        total = runtime.metric("orchard_inference_model_total_seconds_count", **labels)
    assert (queued, requests, total) == (3, 3, 3)
    assert waited < 0.5


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_enabled": False},
        {"batching": {"digits": {"enabled": False}}},
    ],
    ids=["globally", "per-model"],
)
async def test_disabled_batching_runs_every_request_alone(
    make_runtime: MakeRuntime,
    credit_model: CreditModel,
    digits_model: DigitsModel,
    overrides: dict[str, Any],
) -> None:
    models = {"credit-risk": str(credit_model.path), "digits": str(digits_model.path)}
    batches = [digits_pixels(2, seed=i) for i in range(8)]
    async with make_runtime(models, **overrides) as runtime:
        replies = await asyncio.gather(
            *[runtime.client.post("/v2/models/digits/infer", json=tensor_body(p)) for p in batches]
        )
        labels = {"model": "digits", **LABELS}
        requests = runtime.metric("orchard_inference_batch_requests_sum", **labels)
        calls = runtime.metric("orchard_inference_batch_requests_count", **labels)
        runner = runtime.dataplane._runner
        assert isinstance(runner, BatchingRunner)
        policy = runner.policy_for("credit-risk")
    for pixels, reply in zip(batches, replies, strict=True):
        (logits,) = decode_infer_response(reply.content).outputs
        expected = logits_of(digits_model.network, pixels)
        np.testing.assert_allclose(logits.data, expected, rtol=1e-5, atol=1e-6)
    assert (requests, calls) == (8, 8)
    assert policy.enabled is ("batching" in overrides)  # the other model keeps batching


def test_policies_come_from_the_global_settings_and_the_per_model_overrides() -> None:
    settings = InferenceSettings.model_validate(
        {
            "batch_max_size": 32,
            "batch_max_delay_ms": 1.5,
            "batching": {"credit-risk": {"max_size": 8}, "digits": {"enabled": False}},
        }
    )
    runner = BatchingRunner.from_settings(settings)
    assert runner.policy_for("other") == BatchPolicy(True, 32, 0.0015)
    assert runner.policy_for("credit-risk") == BatchPolicy(True, 8, 0.0015)
    assert runner.policy_for("digits") == BatchPolicy(False, 32, 0.0015)


def test_settings_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_INFERENCE_BATCHING", '{"m": {"max_delay_ms": 0}}')
    settings = load_settings(InferenceSettings)
    assert (settings.batch_enabled, settings.batch_max_size) == (True, 64)
    assert settings.batch_max_delay_ms == 2.0
    assert settings.batching["m"].max_delay_ms == 0


def _key(data: ModelInput, wanted: tuple[str, ...] | None = None) -> object:
    found = merge_key(data, wanted)
    return None if found is None else found[0]


def test_merge_keys_tell_compatible_requests_apart() -> None:
    a = np.zeros((2, 3), dtype=np.float32)
    assert merge_key(a, None) == ((None, "array", a.dtype, (3,)), 2)
    assert _key(a) == _key(np.ones((5, 3), dtype=np.float32))
    assert _key(a) != _key(np.zeros((2, 4), dtype=np.float32))
    assert _key(a) != _key(a.astype(np.float64))
    assert _key(a) != _key(a, ("logits",))
    assert _key(np.array(1.0, dtype=np.float32)) is None
    assert _key({"x": a, "y": np.zeros((3, 1))}) is None  # rows disagree
    assert _key({"x": a, "y": np.zeros((2, 1))}) == _key({"y": np.ones((2, 1)), "x": a + 1})
    left = credit_frame(2)
    assert _key(left) == _key(credit_frame(7, seed=1))
    assert _key(left) != _key(left[["income", "age", "purpose"]])


class RowSums:
    """A row-wise numpy model; ``summary`` also returns one value for the whole call."""

    platform = "test"
    outputs: tuple[TensorMeta, ...] = ()

    def __init__(self, summary: bool = False) -> None:
        self.summary = summary
        self.rows: list[int] = []

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        assert isinstance(data, np.ndarray)
        self.rows.append(len(data))
        outputs = {"sum": data.sum(axis=1)}
        if self.summary:
            outputs["total"] = np.asarray(data.sum())
        return outputs


@pytest.mark.parametrize("worker_thread", [True, False], ids=["worker-thread", "on-loop"])
async def test_requests_queued_in_one_loop_turn_share_the_first_call(worker_thread: bool) -> None:
    predictor = RowSums()
    served = ServedModel("m", "uri", version="1", predictor=predictor)
    runner = BatchingRunner(BatchPolicy(max_size=64), worker_thread=worker_thread)
    inputs = [np.full((1 + i % 3, 2), float(i)) for i in range(10)]
    try:
        results = await asyncio.gather(*[runner.run(served, predictor, x, None) for x in inputs])
    finally:
        runner.close()
    assert predictor.rows == [sum(len(x) for x in inputs)]
    for x, (tensor,) in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(tensor.data, x.sum(axis=1))


async def test_outputs_without_one_row_per_input_row_are_recomputed_per_request() -> None:
    predictor = RowSums(summary=True)
    served = ServedModel("m", "uri", version="1", predictor=predictor)
    runner = BatchingRunner(BatchPolicy(max_size=64))
    inputs = [np.full((2, 2), float(i)) for i in range(3)]
    try:
        results = await asyncio.gather(*[runner.run(served, predictor, x, None) for x in inputs])
    finally:
        runner.close()
    assert predictor.rows == [6, 2, 2, 2]  # merged, then each alone
    for x, (row_sums, total) in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(row_sums.data, x.sum(axis=1))
        assert total.data == x.sum()


async def test_a_reloaded_version_gets_a_new_queue_and_the_old_one_is_closed() -> None:
    before, after = RowSums(), RowSums()
    served = ServedModel("m", "uri", version="1", predictor=before)
    runner = BatchingRunner(BatchPolicy())
    x = np.ones((2, 2))
    try:
        await runner.run(served, before, x, None)
        served.predictor = after  # evicted and loaded again
        (tensor,) = await runner.run(served, after, x, None)
        await runner.run(served, after, x, None)
    finally:
        runner.close()
    assert (before.rows, after.rows) == ([2], [2, 2])
    np.testing.assert_array_equal(tensor.data, [2.0, 2.0])
