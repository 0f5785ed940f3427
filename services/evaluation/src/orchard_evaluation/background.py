"""The service's periodic work, run as asyncio tasks in its lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.profiler import WindowProfiler
from orchard_evaluation.settings import EvaluationSettings
from orchard_evaluation.store import EventStore

__all__ = ["every", "maintain", "profile_continuously"]

_log = logging.getLogger("orchard.evaluation.background")
DAY_S = 86_400.0
# KServe logs a request's two halves within its timeout; an hour later the pair is broken.
UNPAIRED_AFTER_S = 3_600.0


async def every(interval_s: float, name: str, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``interval_s`` until cancelled; a failure is logged, never fatal."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("%s failed; trying again in %.0f s", name, interval_s)
        await asyncio.sleep(interval_s)


async def profile_continuously(profiler: WindowProfiler, settings: EvaluationSettings) -> None:
    """Fold waiting events into window profiles; batch after batch while there is a backlog."""

    async def drain() -> None:
        fetched, cursor = await run_in_threadpool(profiler.run_once)
        while fetched >= settings.profile_batch_size:
            fetched, cursor = await run_in_threadpool(profiler.run_once, None, cursor)

    await every(settings.profile_interval_s, "window profiling", drain)


async def maintain(
    store: EventStore, metrics: EvaluationMetrics, settings: EvaluationSettings
) -> None:
    """Delete expired raw events and labels, and KServe halves whose pair never came."""

    async def once() -> None:
        now = time.time()
        events, labels = await run_in_threadpool(
            store.expire, now - settings.retention_days * DAY_S
        )
        dropped = await run_in_threadpool(store.drop_unpaired, now - UNPAIRED_AFTER_S)
        metrics.cloudevents.labels("unpaired").inc(dropped)
        if events or labels or dropped:
            _log.info(
                "retention: deleted %d events, %d labels, %d unpaired CloudEvents",
                events,
                labels,
                dropped,
            )

    await every(settings.retention_interval_s, "retention", once)
