"""Triggers: why a model should be retrained, from evaluation, Alertmanager, a schedule or a
person. Every one is recorded with its reason and what it led to.

Within ``cooldown_s`` of the last *accepted* trigger for a model, a new one is recorded as
``deduplicated`` (one incident, one retraining) and leads to nothing — unless what that
trigger set off has ended without shipping anything (the run failed, or the gate did not pass
its candidate: ``led_to.ended_at``) at least ``retry_after_s`` ago. Retraining right after an
alarm may see too little of the new data to beat the champion; the incident is not over, so
a trigger that arrives later, with more data, retrains again. A trigger that carries
an ``external_id`` (evaluation's trigger id; an alert's fingerprint and start) is recorded
once: a resend returns the first record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orchard_core.errors import NotFound
from orchard_retraining.db import Database
from orchard_retraining.tables import TriggerRecord

__all__ = ["SOURCES", "OnAccepted", "Trigger", "TriggerIntake", "record_dict"]

_log = logging.getLogger("orchard.retraining.triggers")

Source = Literal["evaluation", "alertmanager", "schedule", "manual"]
SOURCES: tuple[Source, ...] = ("evaluation", "alertmanager", "schedule", "manual")


@dataclass(frozen=True)
class Trigger:
    """A request to retrain ``model``, and why."""

    source: Source
    model: str
    kind: str
    reason: str
    version: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    external_id: str | None = None


# What an accepted trigger sets off (a pipeline run); returns what it led to.
OnAccepted = Callable[[TriggerRecord], Mapping[str, Any]]


class TriggerIntake:
    """Records triggers, deduplicating per model within the cooldown; each newly accepted
    one is handed to ``on_accepted`` (the pipeline runner, when retraining is automatic)."""

    def __init__(
        self,
        database: Database,
        cooldown_s: float,
        on_accepted: OnAccepted | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        self._db = database
        self._cooldown_s = cooldown_s
        self._retry_after_s = cooldown_s if retry_after_s is None else retry_after_s
        self.on_accepted = on_accepted

    def receive(self, trigger: Trigger, now: float | None = None) -> tuple[TriggerRecord, bool]:
        """Record ``trigger``; returns the record and whether it is new (False: a resend)."""
        record, new = self._record(trigger, now)
        if new and record.outcome == "accepted" and self.on_accepted is not None:
            try:
                led_to = dict(self.on_accepted(record))
            except Exception as exc:  # the trigger stays recorded; why nothing followed is kept
                _log.exception("trigger %s: starting what it leads to failed", record.id)
                led_to = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            record = self.note(record.id, led_to)
        return record, new

    def note(self, trigger_id: int, changes: Mapping[str, Any]) -> TriggerRecord:
        """Merge ``changes`` into what the trigger led to (run, candidate, gate, rollout)."""
        with self._db.session() as session, session.begin():
            record = session.get(
                TriggerRecord, trigger_id, with_for_update=self._db.dialect == "postgresql"
            )
            if record is None:
                raise NotFound(f"no trigger {trigger_id}")
            record.led_to = {**record.led_to, **changes}
            return record

    def _record(self, trigger: Trigger, now: float | None) -> tuple[TriggerRecord, bool]:
        at = time.time() if now is None else now
        with self._db.session() as session, session.begin():
            if trigger.external_id is not None:
                known = session.scalars(
                    select(TriggerRecord).where(TriggerRecord.external_id == trigger.external_id)
                ).first()
                if known is not None:
                    return known, False
            last = session.scalars(
                select(TriggerRecord)
                .where(
                    TriggerRecord.model == trigger.model,
                    TriggerRecord.outcome == "accepted",
                    TriggerRecord.received_at > at - self._cooldown_s,
                )
                .order_by(TriggerRecord.received_at.desc())
                .limit(1)
            ).first()
            recent = None if last is None or self._may_retry(last, at) else last.id
            record = TriggerRecord(
                external_id=trigger.external_id,
                source=trigger.source,
                model=trigger.model,
                version=trigger.version,
                kind=trigger.kind,
                reason=trigger.reason[:2000],
                details=dict(trigger.details),
                received_at=at,
                outcome="accepted" if recent is None else "deduplicated",
                led_to={} if recent is None else {"deduplicated_by": recent},
            )
            session.add(record)
            try:
                session.flush()
            except IntegrityError:  # the same external id, sent twice at once
                session.rollback()
                return self._by_external_id(trigger.external_id), False
            return record, True

    def _may_retry(self, last: TriggerRecord, at: float) -> bool:
        ended_at = last.led_to.get("ended_at")
        return isinstance(ended_at, int | float) and at - ended_at >= self._retry_after_s

    def _by_external_id(self, external_id: str | None) -> TriggerRecord:
        with self._db.session() as session:
            return session.scalars(
                select(TriggerRecord).where(TriggerRecord.external_id == external_id)
            ).one()

    def history(self, model: str | None = None, limit: int = 100) -> list[TriggerRecord]:
        """The most recent triggers, newest first."""
        with self._db.session() as session:
            query = select(TriggerRecord).order_by(TriggerRecord.id.desc()).limit(limit)
            if model is not None:
                query = query.where(TriggerRecord.model == model)
            return list(session.scalars(query))


def record_dict(record: TriggerRecord) -> dict[str, Any]:
    """A trigger record as the API shows it."""
    return {
        "id": record.id,
        "external_id": record.external_id,
        "source": record.source,
        "model": record.model,
        "version": record.version,
        "kind": record.kind,
        "reason": record.reason,
        "details": record.details,
        "received_at": record.received_at,
        "outcome": record.outcome,
        "led_to": record.led_to,
    }
