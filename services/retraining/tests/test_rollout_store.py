"""Rollouts kept in the database, on SQLite and PostgreSQL: one per model, survive restarts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchard_core.errors import Conflict, InvalidInput, NotFound
from orchard_retraining.db import Database
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.rollouts import ManualAbort, Tick, Verdict

CANARY = {
    "model": "credit-risk",
    "champion_version": "3",
    "candidate_version": "4",
    "strategy": "canary",
    "steps": [10, 50, 100],
    "step_interval_s": 60,
    "min_samples": 100,
}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.open(database_url)
    yield db
    db.close()


def test_a_rollout_goes_on_after_a_restart(database_url: str) -> None:
    first = Database.open(database_url)
    record, transition = RolloutStore(first).start(CANARY, now=1_000.0)
    assert (record.status, transition.state.candidate_weight) == ("canary", 10)
    store = RolloutStore(first)
    _, asked = store.apply(record.id, Tick(), now=1_061.0)
    assert [a.to_dict()["type"] for a in asked.actions] == ["ask_evaluation"]
    first.close()

    again = Database.open(database_url)  # a restarted controller
    store = RolloutStore(again)
    verdict = Verdict("PASS", {"verdict": "PASS"}, samples=500)
    stepped, transition = store.apply(record.id, verdict, now=1_062.0)
    assert (stepped.status, transition.state.candidate_weight) == ("canary", 50)
    assert [d["action"] for d in stepped.state["decisions"]][-1] == transition.decision.action
    again.close()


def test_one_unfinished_rollout_per_model(database: Database) -> None:
    store = RolloutStore(database)
    record, _ = store.start(CANARY, now=1.0)
    with pytest.raises(Conflict, match="already has rollout"):
        store.start(CANARY, now=2.0)
    store.apply(record.id, ManualAbort(actor="ops", reason="not today"), now=3.0)
    assert store.start(CANARY, now=4.0)[0].id != record.id  # finished: a new one may start
    with pytest.raises(Conflict):
        store.apply(record.id, ManualAbort(), now=5.0)  # aborted rollouts stay aborted


def test_bad_specs_and_unknown_rollouts(database: Database) -> None:
    store = RolloutStore(database)
    with pytest.raises(InvalidInput, match="not a valid rollout"):
        store.start({**CANARY, "steps": [50, 10]})
    with pytest.raises(InvalidInput):
        store.start({"model": "m"})
    with pytest.raises(NotFound):
        store.get(404)


def test_alias_changes_stay_pending_until_carried_out_and_block_champion_refresh(
    database: Database,
) -> None:
    store = RolloutStore(database)
    record, _ = store.start(CANARY, now=1.0)
    [pending] = store.with_pending("credit-risk")
    challenger = [a for a in pending.pending_actions if a["type"] == "set_alias"]
    assert [(a["name"], a["version"]) for a in challenger] == [("challenger", "4")]
    # MLflow has not taken them yet: the registry's champion must not overwrite ours.
    store.apply(record.id, ManualAbort(actor="ops"), now=2.0)
    assert store.refresh_champion("credit-risk", "9", now=3.0) is False
    [pending] = store.with_pending()
    store.drop_pending(record.id, list(pending.pending_actions))
    assert store.with_pending() == []
    assert store.champions() == {"credit-risk": "3"}
    assert store.refresh_champion("credit-risk", "9", now=4.0) is True
    assert store.champions() == {"credit-risk": "9"}
