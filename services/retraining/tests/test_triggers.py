"""Trigger intake on SQLite and PostgreSQL: cooldown per model, resends recorded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from orchard_retraining.db import Database
from orchard_retraining.tables import Base
from orchard_retraining.triggers import Trigger, TriggerIntake

DRIFT = Trigger("evaluation", "credit-risk", "data_drift", "7 of 11 features drifted")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.open(database_url)
    yield db
    db.close()


def test_the_migrations_build_exactly_the_declared_schema(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_one_incident_one_retraining_within_the_cooldown(database: Database) -> None:
    intake = TriggerIntake(database, cooldown_s=600)
    first, _ = intake.receive(DRIFT, now=1_000.0)
    again, new = intake.receive(DRIFT, now=1_300.0)
    other, _ = intake.receive(Trigger("manual", "digits", "manual", "by hand"), now=1_300.0)
    later, _ = intake.receive(DRIFT, now=1_700.0)
    assert (first.outcome, again.outcome, other.outcome, later.outcome) == (
        "accepted",
        "deduplicated",
        "accepted",
        "accepted",
    )
    assert new is True
    assert again.led_to == {"deduplicated_by": first.id}
    assert [r.id for r in intake.history("credit-risk")] == [later.id, again.id, first.id]


def test_a_retraining_that_shipped_nothing_lets_a_later_trigger_retry(
    database: Database,
) -> None:
    intake = TriggerIntake(database, cooldown_s=600, retry_after_s=60)
    first, _ = intake.receive(DRIFT, now=1_000.0)
    # Its run is going: one incident, one retraining.
    assert intake.receive(DRIFT, now=1_050.0)[0].outcome == "deduplicated"
    # The gate did not pass the candidate (too little new data yet) at 1_100.
    intake.note(first.id, {"gate": "inconclusive", "ended_at": 1_100.0})
    assert intake.receive(DRIFT, now=1_150.0)[0].outcome == "deduplicated"  # too soon
    retried, _ = intake.receive(DRIFT, now=1_160.0)
    assert retried.outcome == "accepted"
    # A retraining that shipped (a rollout) keeps the cooldown for the whole incident.
    intake.note(retried.id, {"gate": "passed", "rollout_id": 3})
    assert intake.receive(DRIFT, now=1_700.0)[0].outcome == "deduplicated"


def test_a_resend_of_the_same_trigger_is_recorded_once(database: Database) -> None:
    intake = TriggerIntake(database, cooldown_s=0)
    sent = Trigger("evaluation", "m", "data_drift", "r", external_id="evaluation:evaluation-7")
    first, new_first = intake.receive(sent, now=10.0)
    second, new_second = intake.receive(sent, now=20.0)
    assert (new_first, new_second) == (True, False)
    assert second.id == first.id
    assert len(intake.history()) == 1
