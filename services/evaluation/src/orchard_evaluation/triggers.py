"""Retraining triggers: recorded, deduplicated, and delivered to retraining with retries.

When a background evaluation finds drift or a quality drop, it *offers* a trigger. Within
``cooldown_s`` of the last trigger of the same kind for the same model, the offer is
deduplicated (counted, not recorded): one incident, one retraining. Otherwise the trigger is
written to the ``triggers`` table (the audit record) as ``pending`` and a delivery loop posts
it to retraining's ``POST /v1/triggers``. A failure (retraining down, a 5xx) is logged and
retried with exponential backoff and jitter until ``max_age_s``, then marked ``failed``; a
4xx is final at once (retraining refused it: retrying would not help). Without a retraining
URL triggers are recorded as ``recorded`` and never sent. Because the records live in the
database, a restart neither loses pending triggers nor forgets the cooldown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from orchard_evaluation.db import Database
from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.tables import TriggerRow

__all__ = ["TRIGGERS_PATH", "Trigger", "TriggerSender"]

_log = logging.getLogger("orchard.evaluation.triggers")
TRIGGERS_PATH: Final = "/v1/triggers"
_MAX_BACKOFF_S: Final = 300.0
_BATCH: Final = 50


@dataclass(frozen=True)
class Trigger:
    """What a trigger says: which model degraded, how, and the numbers behind it."""

    model: str
    version: str
    kind: str  # data_drift, prediction_drift, quality_degraded, concept_drift
    reason: str
    details: Mapping[str, Any]


class TriggerSender:
    """Records offered triggers and delivers them (see the module docs)."""

    def __init__(
        self,
        database: Database,
        metrics: EvaluationMetrics,
        *,
        retraining_url: str | None,
        cooldown_s: float,
        max_age_s: float,
        timeout_s: float = 10.0,
        poll_s: float = 1.0,
    ) -> None:
        self._db = database
        self._metrics = metrics
        self._url = None if retraining_url is None else retraining_url.rstrip("/") + TRIGGERS_PATH
        self._cooldown_s = cooldown_s
        self._max_age_s = max_age_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        #: Set each time a delivery attempt's outcome is recorded (for waiting on it).
        self.settled = asyncio.Event()

    async def offer(self, trigger: Trigger, now: float | None = None) -> int | None:
        """Record ``trigger`` unless one of its kind for its model is within the cooldown;
        returns its id, or None when deduplicated."""
        at = time.time() if now is None else now
        trigger_id = await run_in_threadpool(self._record, trigger, at)
        if trigger_id is None:
            self._metrics.triggers.labels(trigger.kind, "deduplicated").inc()
            return None
        _log.info(
            "retraining trigger %d: %s %s version %s: %s",
            trigger_id,
            trigger.kind,
            trigger.model,
            trigger.version,
            trigger.reason,
        )
        if self._url is None:
            self._metrics.triggers.labels(trigger.kind, "recorded").inc()
        self._wake.set()
        return trigger_id

    def _record(self, trigger: Trigger, now: float) -> int | None:
        with self._db.session() as session, session.begin():
            recent = session.scalar(
                select(TriggerRow.id)
                .where(
                    TriggerRow.model == trigger.model,
                    TriggerRow.kind == trigger.kind,
                    TriggerRow.created_at > now - self._cooldown_s,
                )
                .limit(1)
            )
            if recent is not None:
                return None
            row = TriggerRow(
                model=trigger.model,
                version=trigger.version,
                kind=trigger.kind,
                reason=trigger.reason[:2000],
                details=dict(trigger.details),
                created_at=now,
                status="pending" if self._url is not None else "recorded",
                attempts=0,
                next_attempt_at=now,
            )
            session.add(row)
            session.flush()
            return row.id

    async def run(self) -> None:
        """Deliver pending triggers until cancelled."""
        if self._url is None:
            return
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                await self.deliver_due(session)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def deliver_due(self, session: aiohttp.ClientSession, now: float | None = None) -> int:
        """Try every trigger whose next attempt is due by ``now``; returns how many were sent."""
        assert self._url is not None
        at = time.time() if now is None else now
        due = await run_in_threadpool(self._due, at)
        sent = 0
        for row in due:
            error = await self._post(session, row)
            final = await run_in_threadpool(self._settle, row.id, error, max(at, time.time()))
            self.settled.set()
            if error is None:
                sent += 1
                self._metrics.triggers.labels(row.kind, "sent").inc()
            elif final:
                self._metrics.triggers.labels(row.kind, "failed").inc()
        return sent

    def _due(self, now: float) -> list[TriggerRow]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(TriggerRow)
                    .where(TriggerRow.status == "pending", TriggerRow.next_attempt_at <= now)
                    .order_by(TriggerRow.id)
                    .limit(_BATCH)
                )
            )

    async def _post(self, session: aiohttp.ClientSession, row: TriggerRow) -> str | None:
        assert self._url is not None
        body = {
            "trigger_id": f"evaluation-{row.id}",
            "model": row.model,
            "version": row.version,
            "kind": row.kind,
            "reason": row.reason,
            "details": row.details,
            "ts": row.created_at,
        }
        try:
            async with session.post(
                self._url, data=orjson.dumps(body), headers={"content-type": "application/json"}
            ) as response:
                if response.status < 300:
                    return None
                text = (await response.text())[:200]
                return f"HTTP {response.status}: {text}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _settle(self, trigger_id: int, error: str | None, now: float) -> bool:
        """Record an attempt's outcome; True when the trigger is now finally failed."""
        with self._db.session() as session, session.begin():
            row = session.get(TriggerRow, trigger_id)
            if row is None:
                return False
            row.attempts += 1
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, None
                return False
            row.last_error = error[:2000]
            refused = error.startswith("HTTP 4")
            if refused or now - row.created_at >= self._max_age_s:
                row.status = "failed"
                _log.error("retraining trigger %d failed for good: %s", trigger_id, error)
                return True
            backoff = min(_MAX_BACKOFF_S, 2.0 ** (row.attempts - 1))
            row.next_attempt_at = now + backoff * random.uniform(0.5, 1.0)  # noqa: S311
            _log.warning(
                "retraining trigger %d not delivered (attempt %d, retrying): %s",
                trigger_id,
                row.attempts,
                error,
            )
            return False

    def history(self, model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent triggers, newest first (the audit trail)."""
        with self._db.session() as session:
            query = select(TriggerRow).order_by(TriggerRow.id.desc()).limit(limit)
            if model is not None:
                query = query.where(TriggerRow.model == model)
            return [
                {
                    "id": row.id,
                    "model": row.model,
                    "version": row.version,
                    "kind": row.kind,
                    "reason": row.reason,
                    "details": row.details,
                    "created_at": row.created_at,
                    "status": row.status,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                    "sent_at": row.sent_at,
                }
                for row in session.scalars(query)
            ]
