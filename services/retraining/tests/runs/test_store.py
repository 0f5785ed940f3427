"""Pipeline-run records on SQLite and PostgreSQL, and the options a run may be given."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchard_core.errors import InvalidInput, NotFound
from orchard_retraining.db import Database
from orchard_retraining.runs import PipelineRunStore, check_options, run_dict


@pytest.fixture
def store(database_url: str) -> Iterator[PipelineRunStore]:
    db = Database.open(database_url)
    yield PipelineRunStore(db)
    db.close()


def test_runs_are_listed_newest_first_and_filtered(store: PipelineRunStore) -> None:
    first = store.create("a", backend="local", now=1.0)
    second = store.create("b", backend="local", trigger_id=7, options={"seed": 1}, now=2.0)
    third = store.create("a", backend="local", auto_rollout=False, actor="ada", now=3.0)
    assert [r.id for r in store.list()] == [third.id, second.id, first.id]
    assert [r.id for r in store.list(model="a", limit=1)] == [third.id]
    store.update(first.id, status="running", started_at=5.0)
    assert [r.id for r in store.list(status="running")] == [first.id]
    assert [r.id for r in store.with_status("pending")] == [second.id, third.id]
    assert store.active_by_model() == {"a": 2, "b": 1}
    shown = run_dict(store.get(third.id))
    assert (shown["options"], shown["auto_rollout"], shown["actor"]) == ({}, False, "ada")
    assert run_dict(store.get(second.id))["options"] == {"seed": 1}


def test_an_update_can_require_the_status_it_expects(store: PipelineRunStore) -> None:
    run = store.create("a", backend="local")
    store.update(run.id, status="cancelled", finished_at=2.0)
    assert store.update(run.id, only_if=("pending",), status="running") is None
    assert store.get(run.id).status == "cancelled"
    with pytest.raises(NotFound):
        store.get(run.id + 100)


def test_the_duration_is_shown_once_a_run_has_finished(store: PipelineRunStore) -> None:
    run = store.create("a", backend="local")
    assert run_dict(run)["duration_s"] is None
    done = store.update(run.id, status="succeeded", started_at=10.0, finished_at=72.5)
    assert done is not None
    assert run_dict(done)["duration_s"] == 62.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([1], "must be an object"),
        ({"learning_rate": 0.1}, "unknown option(s): learning_rate"),
        ({"seed": "1"}, "'seed' must be a non-negative integer"),
        ({"seed": True}, "'seed' must be a non-negative integer"),
        ({"n_rows": 49}, "'n_rows' must be an integer of at least 50"),
        ({"defect": "nan"}, "'defect' must be"),
    ],
)
def test_options_are_allow_listed(options: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_options(options)
    assert message in caught.value.message


def test_good_options_pass() -> None:
    assert check_options({"seed": 0, "n_rows": 50, "defect": "errors"}) == {
        "seed": 0,
        "n_rows": 50,
        "defect": "errors",
    }
