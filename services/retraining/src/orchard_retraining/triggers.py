"""Triggers: why a model should be retrained, from evaluation, Alertmanager, a schedule or a
person. Every one is recorded with its reason and what it led to.

Within ``cooldown_s`` of the last *accepted* trigger for a model, a new one is recorded as
``deduplicated`` (one incident, one retraining) and leads to nothing. A trigger that carries
an ``external_id`` (evaluation's trigger id; an alert's fingerprint and start) is recorded
once: a resend returns the first record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orchard_retraining.db import Database
from orchard_retraining.tables import TriggerRecord

__all__ = ["SOURCES", "Trigger", "TriggerIntake", "record_dict"]

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


class TriggerIntake:
    """Records triggers, deduplicating per model within the cooldown."""

    def __init__(self, database: Database, cooldown_s: float) -> None:
        self._db = database
        self._cooldown_s = cooldown_s

    def receive(self, trigger: Trigger, now: float | None = None) -> tuple[TriggerRecord, bool]:
        """Record ``trigger``; returns the record and whether it is new (False: a resend)."""
        at = time.time() if now is None else now
        with self._db.session() as session, session.begin():
            if trigger.external_id is not None:
                known = session.scalars(
                    select(TriggerRecord).where(TriggerRecord.external_id == trigger.external_id)
                ).first()
                if known is not None:
                    return known, False
            recent = session.scalars(
                select(TriggerRecord.id)
                .where(
                    TriggerRecord.model == trigger.model,
                    TriggerRecord.outcome == "accepted",
                    TriggerRecord.received_at > at - self._cooldown_s,
                )
                .limit(1)
            ).first()
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
