"""What the evaluation benchmark feeds the service: its data, event bodies and metrics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from benchmarks.evaluation.data import CATEGORICAL, FEATURES, NUMERIC, SHIFTED, columns, kinds
from benchmarks.evaluation.ingest import EventBodies, evaluation_spec, parse_profiled

from orchard_evaluation.ingest import event_record, parse_items

METRICS = """\
# HELP orchard_evaluation_events_profiled_total Events folded into window profiles.
# TYPE orchard_evaluation_events_profiled_total counter
orchard_evaluation_events_profiled_total{outcome="profiled"} 4500.0
orchard_evaluation_events_profiled_total{outcome="failed"} 2.0
# HELP orchard_evaluation_events_ingested_total Prediction events received.
# TYPE orchard_evaluation_events_ingested_total counter
orchard_evaluation_events_ingested_total{outcome="accepted"} 9000.0
"""


def test_the_data_has_20_features_of_both_kinds_and_is_reproducible() -> None:
    first, again = columns(500, 7, shifted=True), columns(500, 7, shifted=True)

    assert tuple(first) == FEATURES
    assert len(FEATURES) == 20
    assert (len(NUMERIC), len(CATEGORICAL)) == (15, 5)
    assert all(np.array_equal(first[name], again[name]) for name in FEATURES)
    assert set(kinds().values()) == {"numeric", "categorical"}


def test_the_shift_moves_only_the_shifted_features() -> None:
    plain, shifted = columns(20_000, 1, shifted=False), columns(20_000, 1, shifted=True)

    moved = {
        name
        for name in NUMERIC
        if abs(plain[name].mean() - shifted[name].mean()) > 0.05 * (plain[name].std() or 1)
    }
    assert moved == set(SHIFTED) & set(NUMERIC)


def test_event_bodies_are_accepted_by_ingest_with_unique_ids() -> None:
    bodies = EventBodies(batch=5)

    items = [*parse_items(bodies.next_body(0), "events", 100)]
    items += parse_items(bodies.next_body(1), "events", 100)

    records = [event_record(item, now=time.time()) for item in items]  # raises on an invalid event
    assert len({item["request_id"] for item in items}) == 10
    assert set(records[0]["inputs"]) == set(FEATURES)


def test_profiled_counts_are_read_by_outcome() -> None:
    assert parse_profiled(METRICS) == {"profiled": 4500.0, "failed": 2.0}


def test_the_service_gets_its_own_sqlite_file(tmp_path: Path) -> None:
    spec = evaluation_spec(tmp_path / "e.db")

    assert spec.env["ORCHARD_EVALUATION_DATABASE_URL"] == f"sqlite:///{tmp_path / 'e.db'}"
    assert spec.env["ORCHARD_EVALUATION_PORT"] == "{port}"
