"""Payload logging wired into the gateway: every prediction becomes an event posted to a real
evaluation stand-in on loopback, in batches; evaluation being down, slow or full never fails a
prediction, and what cannot be sent is counted; shutdown flushes within the grace period."""

from __future__ import annotations

import logging
import time

import httpx2
import pytest

from orchard_gateway.evaluation_sinks import FeedbackSink, PredictionEventSink
from orchard_gateway.events import oip_tensors

from .conftest import Gateway, MakeGateway
from .factories import eventually, infer_body
from .fake_backend import FakeBackend
from .fake_evaluation import WAIT_S, FakeEvaluation

INFER = "/v2/models/credit-risk/infer"
EVENTS = "orchard_gateway_events_total"
FEEDBACK = "orchard_gateway_feedback_total"
GRACE_S = 10


async def predict(gateway: Gateway, count: int) -> list[httpx2.Response]:
    replies = [await gateway.client.post(INFER, content=infer_body()) for _ in range(count)]
    assert [reply.status_code for reply in replies] == [200] * count  # never a failed one
    return replies


def outcomes(gateway: Gateway, name: str = EVENTS) -> dict[str, float]:
    return {
        outcome: gateway.metric(name, outcome=outcome)
        for outcome in ("sent", "failed", "dropped", "sampled_out")
    }


async def test_every_prediction_is_an_event_sent_in_batches(
    make_gateway: MakeGateway, backend: FakeBackend, evaluation: FakeEvaluation
) -> None:
    settings = {
        "evaluation_url": evaluation.url,
        "events_batch_size": 3,
        "events_flush_interval_s": 60.0,  # batches by size only, then the rest at shutdown
    }
    async with make_gateway(**settings) as gateway:
        assert isinstance(gateway.app.state.event_sink, PredictionEventSink)
        assert isinstance(gateway.app.state.feedback_sink, FeedbackSink)
        replies = await predict(gateway, 7)
        await evaluation.wait_until(lambda: len(evaluation.events) == 6)
        assert [len(batch) for batch in evaluation.batches] == [3, 3]
    assert [len(batch) for batch in evaluation.batches] == [3, 3, 1]
    assert [e["request_id"] for e in evaluation.events] == [
        reply.headers["x-request-id"] for reply in replies
    ]
    event = evaluation.events[0]
    assert event["model"] == "credit-risk"
    assert event["version"] == "1"
    assert event["route_arm"] == replies[0].headers.get("x-orchard-route-arm", "champion")
    assert event["inputs"] == {"features": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
    answer = replies[0].json()
    assert event["outputs"] == oip_tensors(answer, "outputs")  # what the caller got, flat
    assert event["outputs"]
    assert event["status"] == 200
    assert event["shadow"] is False
    assert 0 < event["latency_ms"] < WAIT_S * 1000
    assert abs(event["ts"] - time.time()) < 60
    assert outcomes(gateway) == {"sent": 7, "failed": 0, "dropped": 0, "sampled_out": 0}


async def test_events_and_feedback_flush_by_interval(
    make_gateway: MakeGateway, backend: FakeBackend, evaluation: FakeEvaluation
) -> None:
    settings = {
        "evaluation_url": evaluation.url,
        "events_batch_size": 500,
        "events_flush_interval_s": 0.02,
    }
    async with make_gateway(**settings) as gateway:
        replies = await predict(gateway, 2)
        feedback = [
            {"request_id": reply.headers["x-request-id"], "label": 1, "ts": 1.0}
            for reply in replies
        ]
        accepted = await gateway.client.post("/v1/feedback", json=feedback)
        assert accepted.status_code == 202
        # Both arrive while the gateway runs, well below the batch size.
        await evaluation.wait_until(
            lambda: len(evaluation.events) == 2 and len(evaluation.feedback) == 2
        )
        await eventually(lambda: gateway.metric(FEEDBACK, outcome="sent") == 2, "feedback sent")
        await eventually(lambda: gateway.metric(EVENTS, outcome="sent") == 2, "events sent")
    assert evaluation.feedback == feedback
    assert len(evaluation.feedback_batches) == 1


async def test_evaluation_down_never_fails_a_prediction(
    make_gateway: MakeGateway, backend: FakeBackend, refused_url: str
) -> None:
    settings = {
        "evaluation_url": refused_url,
        "events_batch_size": 5,
        "events_flush_interval_s": 0.02,
        "shutdown_grace_s": 0,  # do not wait for the rest: drop it, counted
    }
    async with make_gateway(**settings) as gateway:
        await predict(gateway, 20)
        accepted = await gateway.client.post("/v1/feedback", json={"request_id": "a", "value": 1})
        assert accepted.status_code == 202  # queued, like events, while evaluation is down
        # The first batch is retried with backoff (about 1.5 to 3 s in all), then counted failed.
        await eventually(
            lambda: gateway.metric(EVENTS, outcome="failed") >= 5, "a failed batch", within_s=20
        )
    counts = outcomes(gateway)
    assert counts["sent"] == 0
    assert counts["failed"] + counts["dropped"] == 20  # every event accounted for
    assert counts["dropped"] > 0  # the rest was dropped at shutdown
    feedback = outcomes(gateway, FEEDBACK)
    assert feedback["sent"] == 0
    assert feedback["failed"] + feedback["dropped"] == 1


async def test_a_full_queue_drops_and_counts(
    make_gateway: MakeGateway, backend: FakeBackend, evaluation: FakeEvaluation
) -> None:
    evaluation.stall = True  # accepts the connection, answers nothing until released
    settings = {
        "evaluation_url": evaluation.url,
        "events_queue_size": 2,
        "events_batch_size": 1,
        "events_flush_interval_s": 60.0,
    }
    async with make_gateway(**settings) as gateway:
        await predict(gateway, 10)  # none of them waits for evaluation
        await evaluation.wait_until(lambda: evaluation.attempts >= 1)
        # One event in flight, two queued, seven dropped.
        assert gateway.metric(EVENTS, outcome="dropped") == 7
        assert gateway.metric("orchard_gateway_event_queue_depth") == 2
        scraped = (await gateway.client.get("/metrics")).text
        assert 'orchard_gateway_events_total{outcome="dropped"} 7.0' in scraped
        evaluation.stall = False
        evaluation.release.set()
    assert outcomes(gateway) == {"sent": 3, "failed": 0, "dropped": 7, "sampled_out": 0}
    assert len(evaluation.events) == 3


async def test_shutdown_flushes_the_queue_within_the_grace_period(
    make_gateway: MakeGateway, backend: FakeBackend, evaluation: FakeEvaluation
) -> None:
    settings = {
        "evaluation_url": evaluation.url,
        "events_batch_size": 500,
        "events_flush_interval_s": 60.0,  # nothing leaves before shutdown
        "shutdown_grace_s": GRACE_S,
    }
    async with make_gateway(**settings) as gateway:
        await predict(gateway, 5)
        accepted = await gateway.client.post("/v1/feedback", json={"request_id": "a", "label": 0})
        assert accepted.status_code == 202
        assert gateway.metric("orchard_gateway_event_queue_depth") == 5
        assert gateway.metric("orchard_gateway_feedback_queue_depth") == 1
        assert evaluation.events == []
        stopping = time.monotonic()
    assert time.monotonic() - stopping < GRACE_S
    assert len(evaluation.events) == 5
    assert [item["request_id"] for item in evaluation.feedback] == ["a"]
    assert outcomes(gateway) == {"sent": 5, "failed": 0, "dropped": 0, "sampled_out": 0}
    assert gateway.metric(FEEDBACK, outcome="sent") == 1
    assert gateway.app.state.event_sink is None


async def test_sampling_applies_to_events_not_to_feedback(
    make_gateway: MakeGateway, backend: FakeBackend, evaluation: FakeEvaluation
) -> None:
    settings = {"evaluation_url": evaluation.url, "events_sample_rate": 0.0}
    async with make_gateway(**settings) as gateway:
        await predict(gateway, 4)
        accepted = await gateway.client.post("/v1/feedback", json={"request_id": "a", "label": 1})
        assert accepted.status_code == 202
    assert evaluation.events == []
    assert outcomes(gateway)["sampled_out"] == 4
    assert len(evaluation.feedback) == 1


async def test_payload_logging_is_off_without_an_evaluation_url(
    make_gateway: MakeGateway, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orchard.gateway.events")
    async with make_gateway() as gateway:
        assert gateway.app.state.event_sink is None
        await predict(gateway, 2)
    assert "payload logging and feedback forwarding are off" in caplog.text
    assert sum(outcomes(gateway).values()) == 0


async def test_start_up_says_where_events_go(
    make_gateway: MakeGateway, evaluation: FakeEvaluation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orchard.gateway.events")
    async with make_gateway(evaluation_url=evaluation.url, events_sample_rate=0.25):
        pass
    assert f"prediction events to {evaluation.url}/v1/events (sample rate 0.25)" in caplog.text
    assert f"feedback to {evaluation.url}/v1/feedback" in caplog.text
