"""Storing events, labels and KServe logger halves: idempotent, per-item outcomes.

Every write is ``INSERT ... ON CONFLICT DO NOTHING ... RETURNING`` on the natural key
(``request_id`` + ``shadow`` for events, ``request_id`` for labels), so a batch sent twice,
or two gateways racing, store each item once, and the caller learns per item whether it was
new. The methods are synchronous (SQLAlchemy sessions); the API runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from orchard_evaluation.cloudevents import CloudEvent, event_from_pair
from orchard_evaluation.db import Database
from orchard_evaluation.tables import CloudEventHalf, Event, Label

__all__ = ["EventStore", "FeedbackOutcome", "StoreOutcome"]

StoreOutcome = Literal["accepted", "duplicate"]
FeedbackOutcome = Literal["joined", "pending", "duplicate"]
# Rows per INSERT statement: SQLite allows 32,766 bound parameters per statement.
_CHUNK: Final = 500


class EventStore:
    """Writes to the events, labels and CloudEvent-halves tables."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert

    def add_events(self, records: Sequence[dict[str, Any]]) -> list[StoreOutcome]:
        """Store new events; ``duplicate`` for those stored before (or twice in this batch)."""
        with self._db.session() as session, session.begin():
            return self._add_events(session, records)

    def _add_events(
        self, session: Session, records: Sequence[dict[str, Any]]
    ) -> list[StoreOutcome]:
        inserted: set[tuple[str, bool]] = set()
        first: dict[tuple[str, bool], int] = {}
        for index, record in enumerate(records):
            first.setdefault((record["request_id"], record["shadow"]), index)
        unique = [records[i] for i in sorted(first.values())]
        table: Table = Event.__table__  # type: ignore[assignment]
        for start in range(0, len(unique), _CHUNK):
            statement = (
                self._insert(table)
                .values(unique[start : start + _CHUNK])
                .on_conflict_do_nothing(index_elements=["request_id", "shadow"])
                .returning(table.c.request_id, table.c.shadow)
            )
            inserted.update((r.request_id, r.shadow) for r in session.execute(statement))
        outcomes: list[StoreOutcome] = []
        for index, record in enumerate(records):
            key = (record["request_id"], record["shadow"])
            outcomes.append("accepted" if first[key] == index and key in inserted else "duplicate")
        return outcomes

    def add_labels(self, records: Sequence[dict[str, Any]]) -> list[FeedbackOutcome]:
        """Store new labels: ``joined`` when the prediction is here, ``pending`` when it is
        not yet (it joins when it arrives), ``duplicate`` when the id already has a label
        (the first one stays)."""
        table: Table = Label.__table__  # type: ignore[assignment]
        with self._db.session() as session, session.begin():
            first: dict[str, int] = {}
            for index, record in enumerate(records):
                first.setdefault(record["request_id"], index)
            unique = [records[i] for i in sorted(first.values())]
            inserted: set[str] = set()
            for start in range(0, len(unique), _CHUNK):
                statement = (
                    self._insert(table)
                    .values(unique[start : start + _CHUNK])
                    .on_conflict_do_nothing(index_elements=["request_id"])
                    .returning(table.c.request_id)
                )
                inserted.update(session.scalars(statement))
            known = self._known_requests(session, inserted)
        outcomes: list[FeedbackOutcome] = []
        for index, record in enumerate(records):
            request_id = record["request_id"]
            if first[request_id] != index or request_id not in inserted:
                outcomes.append("duplicate")
            else:
                outcomes.append("joined" if request_id in known else "pending")
        return outcomes

    def add_cloudevent(
        self, event: CloudEvent, now: float
    ) -> tuple[Literal["waiting", "duplicate", "joined"], StoreOutcome | None]:
        """Keep one half of a KServe logger pair, or join it with the half already here.

        Returns what happened to the half and, once joined, to the prediction event.

        Raises:
            ValueError: the joined pair does not make a valid event (both halves dropped).
        """
        other_kind = "response" if event.kind == "request" else "request"
        with self._db.session() as session, session.begin():
            other = session.get(CloudEventHalf, (event.id, other_kind))
            if other is None:
                table: Table = CloudEventHalf.__table__  # type: ignore[assignment]
                statement = (
                    self._insert(table)
                    .values(
                        ce_id=event.id,
                        kind=event.kind,
                        attributes=event.attributes,
                        data=event.data,
                        received_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["ce_id", "kind"])
                    .returning(table.c.ce_id)
                )
                stored = session.scalars(statement).first()
                return ("waiting" if stored is not None else "duplicate"), None
            session.delete(other)
            halves = {event.kind: event, other_kind: _half(other)}
            record = event_from_pair(halves["request"], halves["response"], now)
            return "joined", self._add_events(session, [record])[0]

    def drop_unpaired(self, older_than: float) -> int:
        """Forget halves whose pair never came; how many there were."""
        with self._db.session() as session, session.begin():
            result = session.execute(
                delete(CloudEventHalf).where(CloudEventHalf.received_at < older_than)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def expire(self, older_than: float) -> tuple[int, int]:
        """Delete raw events (already folded into window profiles) and labels from before
        ``older_than``; returns how many of each."""
        with self._db.session() as session, session.begin():
            events = session.execute(
                delete(Event).where(Event.ts < older_than, Event.profiled.is_(True))
            )
            labels = session.execute(delete(Label).where(Label.ts < older_than))
            return int(events.rowcount or 0), int(labels.rowcount or 0)  # type: ignore[attr-defined]

    @staticmethod
    def _known_requests(session: Session, request_ids: Iterable[str]) -> set[str]:
        ids = list(request_ids)
        known: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            known.update(
                session.scalars(
                    select(Event.request_id).where(
                        tuple_(Event.request_id, Event.shadow).in_([(i, False) for i in chunk])
                    )
                )
            )
        return known


def _half(row: CloudEventHalf) -> CloudEvent:
    return CloudEvent(row.ce_id, row.kind, dict(row.attributes), row.data)
