"""Payload logging: the event sink against a real evaluation stand-in on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from orchard_gateway import GatewaySettings
from orchard_gateway.evaluation_sinks import (
    EvaluationSink,
    EvaluationSinks,
    EventSinkMetrics,
    FeedbackSink,
    FeedbackSinkMetrics,
    PredictionEventSink,
    SinkMetrics,
)
from orchard_gateway.events import event_from_oip, is_sampled, oip_tensors

from .fake_evaluation import WAIT_S, FakeEvaluation


def metric(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("orchard_gateway_events_total", {"outcome": outcome}) or 0.0


def depth(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("orchard_gateway_event_queue_depth") or 0.0


def event(request_id: str, *, shadow: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": 1.0,
        "model": "credit-risk",
        "version": "3",
        "route_arm": "champion",
        "inputs": {"x": [1.0, 2.0]},
        "outputs": {"y": [0.5]},
        "latency_ms": 1.5,
        "status": 200,
        "shadow": shadow,
        **extra,
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


MakeSink = Callable[..., PredictionEventSink]


@pytest.fixture
async def make_sink(
    registry: CollectorRegistry, evaluation: FakeEvaluation
) -> AsyncIterator[MakeSink]:
    session = aiohttp.ClientSession()
    metrics = EventSinkMetrics(registry)
    sinks: list[PredictionEventSink] = []

    def make(url: str | None = None, **options: Any) -> PredictionEventSink:
        options.setdefault("backoff_base_s", 0.01)
        options.setdefault("backoff_max_s", 0.05)
        sink = PredictionEventSink(session, url or evaluation.url, metrics, **options)
        sinks.append(sink)
        return sink

    try:
        yield make
    finally:
        for sink in sinks:
            await sink.aclose(grace_s=0.5)
        await session.close()


async def test_batches_by_size(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    sink = make_sink(batch_size=3, flush_interval_s=60.0)
    sink.start()
    for i in range(7):
        assert sink.offer(event(f"r{i}"))
    await evaluation.wait_until(lambda: len(evaluation.events) == 6)
    assert [len(b) for b in evaluation.batches] == [3, 3]
    assert [e["request_id"] for e in evaluation.events] == [f"r{i}" for i in range(6)]
    assert depth(registry) == 1  # the seventh waits for the interval or for shutdown

    await sink.aclose(grace_s=WAIT_S)
    assert [len(b) for b in evaluation.batches] == [3, 3, 1]
    assert metric(registry, "sent") == 7
    assert depth(registry) == 0


async def test_batches_by_interval(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    sink = make_sink(batch_size=100, flush_interval_s=0.05)
    sink.start()
    assert sink.offer(event("a"))
    assert sink.offer(event("b", shadow=True))
    await evaluation.wait_until(lambda: len(evaluation.events) == 2)
    assert len(evaluation.batches) == 1
    assert evaluation.batches[0] == [event("a"), event("b", shadow=True)]
    assert sink.running  # the loop goes on waiting for more
    assert sink.offer(event("c"))
    await evaluation.wait_until(lambda: len(evaluation.events) == 3)
    await sink.aclose(grace_s=WAIT_S)
    assert len(evaluation.batches) == 2
    assert metric(registry, "sent") == 3


@pytest.mark.parametrize("status", [503, 500, 429])
async def test_retries_with_backoff_then_succeeds(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry, status: int
) -> None:
    evaluation.fail_times = 2
    evaluation.fail_status = status
    sink = make_sink(batch_size=2, flush_interval_s=60.0, max_attempts=4)
    sink.start()
    sink.offer(event("a"))
    sink.offer(event("b"))
    await evaluation.wait_until(lambda: len(evaluation.events) == 2)
    assert evaluation.attempts == 3
    assert len(evaluation.batches) == 1  # the same batch, sent once it was accepted
    await sink.aclose(grace_s=WAIT_S)
    assert metric(registry, "sent") == 2
    assert metric(registry, "failed") == 0


async def test_gives_up_after_bounded_attempts(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    evaluation.fail_times = 100
    sink = make_sink(batch_size=1, flush_interval_s=60.0, max_attempts=3)
    sink.start()
    sink.offer(event("a"))
    await sink.aclose(grace_s=WAIT_S)
    assert evaluation.attempts == 3
    assert metric(registry, "failed") == 1
    assert metric(registry, "sent") == 0


async def test_client_error_fails_without_retry(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    evaluation.fail_times = 1
    evaluation.fail_status = 400
    sink = make_sink(batch_size=1, flush_interval_s=60.0, max_attempts=5)
    sink.start()
    sink.offer(event("bad"))
    await evaluation.wait_until(lambda: evaluation.attempts == 1)
    sink.offer(event("good"))
    await evaluation.wait_until(lambda: len(evaluation.events) == 1)
    assert evaluation.attempts == 2  # one for each batch: the refused one was not retried
    assert evaluation.events[0]["request_id"] == "good"
    await sink.aclose(grace_s=WAIT_S)
    assert metric(registry, "failed") == 1
    assert metric(registry, "sent") == 1


async def test_evaluation_down_counts_failed_and_offer_stays_instant(
    make_sink: MakeSink, refused_url: str, registry: CollectorRegistry
) -> None:
    sink = make_sink(refused_url, batch_size=10, flush_interval_s=0.01, max_attempts=3)
    sink.start()
    # offer() is a plain function: it returns without ever awaiting the network.
    accepted = [sink.offer(event(f"r{i}")) for i in range(50)]
    assert all(accepted)
    await asyncio.sleep(0)  # the loop runs; offer() still never blocks nor raises
    assert sink.offer(event("late"))
    await sink.aclose(grace_s=WAIT_S)
    assert metric(registry, "failed") == 51
    assert metric(registry, "sent") == 0
    assert metric(registry, "dropped") == 0


async def test_queue_full_drops_and_counts(
    make_sink: MakeSink, registry: CollectorRegistry
) -> None:
    sink = make_sink(max_queue=3, batch_size=10)  # not started: nothing drains the queue
    assert [sink.offer(event(f"r{i}")) for i in range(5)] == [True, True, True, False, False]
    assert metric(registry, "dropped") == 2
    assert depth(registry) == 3
    await sink.aclose(grace_s=0.1)  # never started: what is queued is dropped too
    assert metric(registry, "dropped") == 5
    assert depth(registry) == 0
    assert not sink.offer(event("after-close"))
    assert metric(registry, "dropped") == 6


async def test_sampling_is_deterministic_by_request_id(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    ids = [f"req-{i}" for i in range(2000)]
    first = [is_sampled(i, 0.3) for i in ids]
    assert first == [is_sampled(i, 0.3) for i in ids]
    assert 0.25 < sum(first) / len(ids) < 0.35
    assert all(is_sampled(i, 1.0) for i in ids[:50])
    assert not any(is_sampled(i, 0.0) for i in ids[:50])
    # A lower rate keeps a subset of what a higher rate keeps.
    assert all(is_sampled(i, 0.5) for i, kept in zip(ids, first, strict=True) if kept)

    sink = make_sink(sample_rate=0.3, batch_size=10_000, max_queue=10_000, flush_interval_s=0.01)
    sink.start()
    for request_id in ids[:200]:
        primary = sink.offer(event(request_id))
        shadow = sink.offer(event(request_id, shadow=True))
        assert primary == shadow == is_sampled(request_id, 0.3)
    kept = sum(first[:200])
    await evaluation.wait_until(lambda: len(evaluation.events) == 2 * kept)
    assert metric(registry, "sampled_out") == 2 * (200 - kept)
    assert {e["request_id"] for e in evaluation.events} == {
        i for i, k in zip(ids[:200], first[:200], strict=True) if k
    }


async def test_aclose_flushes_within_grace(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    sink = make_sink(batch_size=4, flush_interval_s=60.0)
    sink.start()
    for i in range(10):
        sink.offer(event(f"r{i}"))
    await sink.aclose(grace_s=WAIT_S)
    assert len(evaluation.events) == 10
    assert metric(registry, "sent") == 10
    assert metric(registry, "dropped") == 0
    assert not sink.running


async def test_aclose_drops_what_grace_does_not_allow(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    evaluation.stall = True
    sink = make_sink(batch_size=2, flush_interval_s=60.0)
    sink.start()
    for i in range(5):
        sink.offer(event(f"r{i}"))
    await evaluation.wait_until(lambda: evaluation.attempts == 1)  # first batch in flight
    await sink.aclose(grace_s=0.05)
    assert not sink.running
    assert metric(registry, "dropped") == 5  # the batch in flight and the three queued
    assert metric(registry, "sent") == 0
    assert depth(registry) == 0


async def test_a_broken_event_never_stops_the_loop(
    make_sink: MakeSink, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    sink = make_sink(batch_size=1, flush_interval_s=60.0)
    sink.start()
    assert sink.offer(event("broken", inputs={"x": object()}))  # not serializable
    assert sink.offer(event("fine"))
    await evaluation.wait_until(lambda: len(evaluation.events) == 1)
    assert evaluation.events[0]["request_id"] == "fine"
    assert metric(registry, "failed") == 1
    assert sink.running


async def test_offer_never_raises_on_odd_events(
    make_sink: MakeSink, registry: CollectorRegistry
) -> None:
    sink = make_sink()  # not started: offering needs no running task
    assert sink.offer({})  # no request_id: sampled as "" and kept at rate 1
    assert not sink.offer(None)  # type: ignore[arg-type]
    assert depth(registry) == 1


async def test_settings_are_checked(make_sink: MakeSink) -> None:
    for bad in ({"batch_size": 0}, {"sample_rate": 1.5}, {"flush_interval_s": 0}):
        with pytest.raises(ValueError, match="must"):
            make_sink(**bad)


# --- the generic sink and its feedback flavour ---------------------------------------------


def feedback_metric(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("orchard_gateway_feedback_total", {"outcome": outcome})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_feedback_sink_posts_to_its_own_path_with_its_own_metrics(
    session: aiohttp.ClientSession, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    EventSinkMetrics(registry)  # both flavours live on one registry, as in the gateway
    sink = FeedbackSink(session, evaluation.url + "/", FeedbackSinkMetrics(registry), batch_size=2)
    assert sink.url == evaluation.url + "/v1/feedback"
    sink.start()
    items = [{"request_id": f"r{i}", "label": i % 2, "ts": 1.0} for i in range(3)]
    assert sink.offer_all(items)
    await evaluation.wait_until(lambda: len(evaluation.feedback) == 2)
    assert registry.get_sample_value("orchard_gateway_feedback_queue_depth") == 1
    await sink.aclose(grace_s=WAIT_S)
    assert [len(batch) for batch in evaluation.feedback_batches] == [2, 1]
    assert evaluation.feedback == items
    assert evaluation.batches == []  # nothing went to /v1/events
    assert feedback_metric(registry, "sent") == 3
    assert metric(registry, "sent") == 0
    # Feedback is never sampled: no such outcome, and no way to ask for it.
    assert feedback_metric(registry, "sampled_out") is None
    with pytest.raises(ValueError, match="must not be sampled"):
        FeedbackSink(
            session, evaluation.url, FeedbackSinkMetrics(CollectorRegistry()), sample_rate=0.5
        )


async def test_offer_all_takes_all_or_none(
    session: aiohttp.ClientSession, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    sink = FeedbackSink(session, evaluation.url, FeedbackSinkMetrics(registry), max_queue=3)
    assert sink.offer_all([{"request_id": "a"}, {"request_id": "b"}])
    assert not sink.offer_all([{"request_id": "c"}, {"request_id": "d"}])  # one too many
    assert feedback_metric(registry, "dropped") == 2
    assert sink.queue_depth() == 2
    assert sink.offer_all([{"request_id": "c"}])
    await sink.aclose(grace_s=0.1)  # never started: all three are dropped
    assert feedback_metric(registry, "dropped") == 5
    assert not sink.offer_all([{"request_id": "late"}])
    assert feedback_metric(registry, "dropped") == 6


async def test_a_sink_for_any_path_and_metric_prefix(
    session: aiohttp.ClientSession, evaluation: FakeEvaluation, registry: CollectorRegistry
) -> None:
    metrics = SinkMetrics(registry, "orchard_test_things", what="test things")
    sink = EvaluationSink(session, evaluation.url, "/v1/feedback", metrics, batch_size=1)
    sink.start()
    sink.offer({"request_id": "x"})
    await sink.aclose(grace_s=WAIT_S)
    assert evaluation.feedback == [{"request_id": "x"}]
    assert registry.get_sample_value("orchard_test_things_total", {"outcome": "sent"}) == 1
    assert registry.get_sample_value("orchard_test_things_queue_depth") == 0


async def test_evaluation_sinks_stay_off_without_an_evaluation_url(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    sinks = EvaluationSinks(GatewaySettings(), registry)
    with caplog.at_level(logging.INFO, logger="orchard.gateway.events"):
        sinks.start()
    assert sinks.events is None
    assert sinks.feedback is None
    assert "payload logging and feedback forwarding are off" in caplog.text
    await sinks.aclose(1.0)  # nothing to close, nothing raised


async def test_evaluation_sinks_start_log_where_to_and_flush_at_close(
    evaluation: FakeEvaluation, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://svc:s3cret-pass@127.0.0.1:{evaluation.port}/"
    settings = GatewaySettings(
        evaluation_url=url, events_batch_size=100, events_flush_interval_s=60.0
    )
    sinks = EvaluationSinks(settings, registry)
    with caplog.at_level(logging.INFO, logger="orchard.gateway.events"):
        sinks.start()
    assert sinks.events is not None
    assert sinks.feedback is not None
    assert f"prediction events to http://127.0.0.1:{evaluation.port}/v1/events" in caplog.text
    assert "s3cret" not in caplog.text
    assert sinks.events.offer(event("e1"))
    assert sinks.feedback.offer_all([{"request_id": "e1", "label": 1, "ts": 2.0}])
    await sinks.aclose(float(WAIT_S))  # well before the 60 s interval: shutdown flushes
    assert [e["request_id"] for e in evaluation.events] == ["e1"]
    assert evaluation.feedback == [{"request_id": "e1", "label": 1, "ts": 2.0}]


# --- event_from_oip -------------------------------------------------------------------------

REQUEST = {
    "id": "r1",
    "inputs": [
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1.0, 2.0], [3.0, 4.0]]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hi"]},
    ],
}
RESPONSE = {
    "model_name": "credit-risk",
    "model_version": "3",
    "id": "r1",
    "outputs": [{"name": "y", "shape": [2], "datatype": "FP64", "data": [0.1, 0.9]}],
}


@pytest.mark.parametrize("as_bytes", [True, False])
def test_event_from_oip(as_bytes: bool) -> None:
    request: Any = orjson.dumps(REQUEST) if as_bytes else REQUEST
    response: Any = orjson.dumps(RESPONSE) if as_bytes else RESPONSE
    got = event_from_oip(
        request,
        response,
        request_id="r1",
        model="credit-risk",
        version="3",
        route_arm="canary",
        latency_ms=2.5,
        status=200,
        unit="user-7",
        ts=10.0,
    )
    assert got == {
        "request_id": "r1",
        "ts": 10.0,
        "model": "credit-risk",
        "version": "3",
        "route_arm": "canary",
        "unit": "user-7",
        "inputs": {"x": [1.0, 2.0, 3.0, 4.0], "s": ["hi"]},
        "outputs": {"y": [0.1, 0.9]},
        "latency_ms": 2.5,
        "status": 200,
        "shadow": False,
    }
    orjson.dumps(got)  # ready to ship as is


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b"[1, 2]",
        b'"text"',
        b'{"inputs": 3}',
        b'{"inputs": [1, "x", null]}',
        b'{"inputs": [{"name": 1, "data": [1]}, {"name": "x", "data": "nope"}]}',
        b"\xff\xfe",
        None,
    ],
)
def test_malformed_bodies_give_empty_tensors(body: bytes | None) -> None:
    assert oip_tensors(body, "inputs") == {}
    got = event_from_oip(
        body,
        body,
        request_id="r",
        model="m",
        version="1",
        route_arm="champion",
        latency_ms=1.0,
        status=400,
        shadow=True,
        experiment="exp-1",
        trace_id="abc",
    )
    assert got["inputs"] == got["outputs"] == {}
    assert got["shadow"] is True
    assert got["experiment"] == "exp-1"
    assert got["trace_id"] == "abc"
    assert isinstance(got["ts"], float)


def test_well_formed_tensors_survive_broken_neighbours() -> None:
    body = {"inputs": [{"name": "bad"}, {"name": "ok", "data": [[[1], [2]], [[3], [4]]]}]}
    assert oip_tensors(body, "inputs") == {"ok": [1, 2, 3, 4]}
    assert oip_tensors(orjson.dumps({"error": "boom"}), "outputs") == {}
