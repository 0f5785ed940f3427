"""The store on SQLite and on a real PostgreSQL server: schema, idempotence, joins, expiry."""

from __future__ import annotations

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from orchard_evaluation.cloudevents import CloudEvent
from orchard_evaluation.db import Database
from orchard_evaluation.ingest import event_record, feedback_record
from orchard_evaluation.store import EventStore
from orchard_evaluation.tables import Base, CloudEventHalf, Event, Label

from .factories import event, label


@pytest.fixture
def database(database_url: str) -> Database:
    db = Database.open(database_url)
    yield db
    db.close()


@pytest.fixture
def store(database: Database) -> EventStore:
    return EventStore(database)


def _records(*items: dict) -> list[dict]:
    now = time.time()
    return [event_record(item, now) for item in items]


def _count(database: Database, table: type) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_the_migrations_build_exactly_the_declared_schema(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    Database.open(database_url).close()
    Database.open(database_url).close()  # already at head: a no-op, not an error


def test_an_event_sent_twice_is_stored_once(store: EventStore, database: Database) -> None:
    assert store.add_events(_records(event("a"), event("b"))) == ["accepted", "accepted"]
    assert store.add_events(_records(event("b"), event("c"))) == ["duplicate", "accepted"]
    assert _count(database, Event) == 3


def test_a_repeat_within_one_batch_is_a_duplicate(store: EventStore, database: Database) -> None:
    outcomes = store.add_events(_records(event("a"), event("a"), event("a", shadow=True)))
    assert outcomes == ["accepted", "duplicate", "accepted"]  # a shadow is its own event
    assert _count(database, Event) == 2


def test_a_large_batch_is_stored_whole(store: EventStore, database: Database) -> None:
    outcomes = store.add_events(_records(*(event(f"r{i}") for i in range(2_000))))
    assert outcomes.count("accepted") == 2_000
    assert _count(database, Event) == 2_000


def test_labels_join_wait_for_their_prediction_or_are_duplicates(
    store: EventStore, database: Database
) -> None:
    store.add_events(_records(event("seen")))
    now = time.time()
    items = [label("seen"), label("later", 0), label("seen", 0)]
    outcomes = store.add_labels([feedback_record(i, now) for i in items])
    assert outcomes == ["joined", "pending", "duplicate"]
    assert store.add_labels([feedback_record(label("later", 1), now)]) == ["duplicate"]
    with database.session() as session:
        kept = session.scalars(select(Label).where(Label.request_id == "seen")).one()
    assert kept.label == 1  # the first label stays
    # The prediction for "later" arrives after its label: the two now join.
    store.add_events(_records(event("later")))
    with database.session() as session:
        joined = session.execute(
            select(Event.request_id, Label.label).join(Label, Label.request_id == Event.request_id)
        ).all()
    assert sorted(joined) == [("later", 0), ("seen", 1)]


def _half(ce_id: str, kind: str, data: dict, at: str) -> CloudEvent:
    attributes = {
        "id": ce_id,
        "type": f"org.kubeflow.serving.inference.{kind}",
        "source": "http://localhost:9081/",
        "specversion": "1.0",
        "time": at,
        "inferenceservicename": "credit-risk",
        "endpoint": "canary",
    }
    return CloudEvent(ce_id, kind, attributes, data)


def test_a_kserve_logger_pair_becomes_one_event(store: EventStore, database: Database) -> None:
    request = _half(
        "ce-1", "request", {"instances": [[1.0, 2.0], [3.0, 4.0]]}, "2026-11-27T10:00:00.000000000Z"
    )
    response = _half("ce-1", "response", {"predictions": [0, 1]}, "2026-11-27T10:00:00.004500000Z")
    assert store.add_cloudevent(response, time.time()) == ("waiting", None)
    assert store.add_cloudevent(response, time.time()) == ("duplicate", None)
    assert store.add_cloudevent(request, time.time()) == ("joined", "accepted")
    assert _count(database, CloudEventHalf) == 0
    with database.session() as session:
        stored = session.scalars(select(Event)).one()
    assert stored.request_id == "ce-1"
    assert stored.model == "credit-risk"
    assert stored.version == "canary"
    assert stored.n_rows == 2
    assert stored.inputs == {"0": [1.0, 3.0], "1": [2.0, 4.0]}
    assert stored.outputs == {"predictions": [0, 1]}
    assert stored.latency_ms == pytest.approx(4.5, abs=1e-3)  # ms from two Unix times


def test_unpaired_halves_are_dropped_after_a_while(store: EventStore, database: Database) -> None:
    store.add_cloudevent(_half("lonely", "request", {"instances": [[1]]}, ""), now=100.0)
    assert store.drop_unpaired(older_than=50.0) == 0
    assert store.drop_unpaired(older_than=200.0) == 1
    assert _count(database, CloudEventHalf) == 0


def test_expiry_keeps_events_not_yet_profiled(store: EventStore, database: Database) -> None:
    store.add_events(_records(event("old", ts=1_000.0), event("new")))
    now = time.time()
    store.add_labels([feedback_record(label("old", ts=1_000.0), now)])
    assert store.expire(older_than=now - 60) == (0, 1)  # "old" is not in a profile yet
    with database.session() as session, session.begin():
        for row in session.scalars(select(Event)):
            row.profiled = True
    assert store.expire(older_than=now - 60) == (1, 0)
    assert _count(database, Event) == 1
