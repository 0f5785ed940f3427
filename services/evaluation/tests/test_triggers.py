"""Retraining triggers: cooldown, delivery, retries while retraining is down, audit trail."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from orchard_core import new_registry
from orchard_evaluation.db import Database
from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.triggers import Trigger, TriggerSender

from .conftest import MakeEvaluation
from .retraining_stub import RetrainingStub

DRIFT = Trigger("credit-risk", "3", "data_drift", "7 of 11 features drifted", {"share": 0.64})
DAY = 86_400.0


@pytest.fixture
async def retraining() -> AsyncIterator[RetrainingStub]:
    stub = await RetrainingStub().start()
    yield stub
    await stub.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL where nothing accepts connections (retraining is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def database(sqlite_url: str) -> Iterator[Database]:
    db = Database.open(sqlite_url)
    yield db
    db.close()


def sender(database: Database, url: str | None, cooldown_s: float = 3_600.0) -> TriggerSender:
    metrics = EvaluationMetrics(new_registry())
    return TriggerSender(
        database, metrics, retraining_url=url, cooldown_s=cooldown_s, max_age_s=DAY
    )


async def test_a_trigger_is_delivered_and_repeats_within_the_cooldown_are_not(
    database: Database, retraining: RetrainingStub
) -> None:
    triggers = sender(database, retraining.url)
    first = await triggers.offer(DRIFT, now=1_000.0)
    assert first is not None
    assert await triggers.offer(DRIFT, now=1_500.0) is None  # same incident
    assert await triggers.offer(
        Trigger("credit-risk", "3", "quality_degraded", "accuracy fell", {}), now=1_500.0
    )  # another kind is its own incident
    async with aiohttp.ClientSession() as session:
        assert await triggers.deliver_due(session) == 2
    assert [t["kind"] for t in retraining.received] == ["data_drift", "quality_degraded"]
    assert retraining.received[0]["details"] == {"share": 0.64}
    assert retraining.received[0]["trigger_id"] == f"evaluation-{first}"
    assert await triggers.offer(DRIFT, now=1_000.0 + 3_601.0) is not None  # cooldown over


async def test_while_retraining_is_down_triggers_wait_and_are_retried(
    database: Database, refused_url: str, retraining: RetrainingStub
) -> None:
    down = sender(database, refused_url)
    await down.offer(DRIFT)
    async with aiohttp.ClientSession() as session:
        assert await down.deliver_due(session) == 0
        assert await down.deliver_due(session) == 0  # backing off: not due yet
    [record] = down.history()
    assert record["status"] == "pending"
    assert record["attempts"] == 1
    assert "ClientConnectorError" in record["last_error"]
    # Retraining comes back (a restart of evaluation, pointed at it): the trigger goes out.
    up = sender(database, retraining.url)
    async with aiohttp.ClientSession() as session:
        assert await up.deliver_due(session, now=time.time() + 600) == 1
    assert up.history()[0]["status"] == "sent"
    assert len(retraining.received) == 1


async def test_a_refused_trigger_fails_at_once_and_an_old_one_gives_up(
    database: Database, retraining: RetrainingStub, refused_url: str
) -> None:
    retraining.status = 422
    triggers = sender(database, retraining.url)
    await triggers.offer(DRIFT)
    async with aiohttp.ClientSession() as session:
        await triggers.deliver_due(session)
    assert triggers.history()[0]["status"] == "failed"
    assert triggers.history()[0]["last_error"].startswith("HTTP 422")

    down = sender(database, refused_url, cooldown_s=0)
    await down.offer(DRIFT, now=time.time())
    async with aiohttp.ClientSession() as session:
        await down.deliver_due(session, now=time.time() + 2 * DAY)
    assert down.history()[0]["status"] == "failed"


async def test_without_a_retraining_url_triggers_are_recorded_only(database: Database) -> None:
    triggers = sender(database, None)
    await triggers.offer(DRIFT)
    assert triggers.history()[0]["status"] == "recorded"


async def test_the_service_delivers_in_the_background_and_lists_triggers(
    make_evaluation: MakeEvaluation, retraining: RetrainingStub
) -> None:
    async with make_evaluation(retraining_url=retraining.url) as evaluation:
        sender = evaluation.app.state.triggers
        await sender.offer(DRIFT)
        await asyncio.wait_for(sender.settled.wait(), timeout=10)
        assert [t["model"] for t in retraining.received] == ["credit-risk"]
        response = await evaluation.client.get("/v1/triggers", params={"model": "credit-risk"})
        [listed] = response.json()["triggers"]
        assert (listed["kind"], listed["status"]) == ("data_drift", "sent")
        assert (
            evaluation.metric(
                "orchard_evaluation_triggers_total", kind="data_drift", outcome="sent"
            )
            == 1
        )
