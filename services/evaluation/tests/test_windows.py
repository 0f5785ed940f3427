"""Window profiles at two widths: any range is answered exactly, from rollups and edges."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import select

from orchard_core.profiles import ReferenceProfile, WindowProfile
from orchard_evaluation.db import Database, migrate, open_engine
from orchard_evaluation.tables import WindowProfileRow
from orchard_evaluation.windows import WindowStore

from .factories import reference_profile

BUCKET, ROLLUP = 60, 3_600
T0 = 1_699_999_200  # on an hour boundary


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.open(database_url)
    yield db
    db.close()


def _window(reference: ReferenceProfile, rows: int, seed: int) -> WindowProfile:
    rng = np.random.default_rng(seed)
    return WindowProfile.build(
        reference.features and reference, {"age": rng.integers(18, 80, rows)}
    )


def _fill(store: WindowStore, database: Database, minutes: int) -> list[tuple[int, int]]:
    """One bucket per minute from T0, each with (minute + 1) rows; returns (start, rows)."""
    reference = ReferenceProfile.from_dict(reference_profile())
    buckets = []
    with database.session() as session, session.begin():
        for minute in range(minutes):
            start = T0 + minute * BUCKET
            rows = minute + 1
            store.add(session, "m", "1", start, _window(reference, rows, minute), time.time())
            buckets.append((start, rows))
    return buckets


def test_any_range_counts_exactly_the_rows_of_the_buckets_starting_in_it(
    database: Database,
) -> None:
    store = WindowStore(database, BUCKET, ROLLUP)
    buckets = _fill(store, database, 150)  # two and a half hours
    rng = np.random.default_rng(0)
    ranges = [(None, None), (T0, None), (None, T0 + 5_000), (T0 + 3_600, T0 + 7_200)]
    for _ in range(25):
        a, b = sorted(rng.uniform(T0 - 600, T0 + 9_600, 2))
        ranges.append((float(a), float(b)))
    for since, until in ranges:
        expected = sum(
            rows
            for start, rows in buckets
            if (since is None or start >= since) and (until is None or start < until)
        )
        merged = store.merge_range("m", "1", since, until)
        assert (merged.n_rows if merged else 0) == expected, (since, until)
    with database.session() as session:
        rollups = session.scalars(
            select(WindowProfileRow.bucket_start).where(WindowProfileRow.width_s == ROLLUP)
        ).all()
    assert sorted(rollups) == [T0, T0 + 3_600, T0 + 7_200]


def test_a_whole_day_reads_rollups_not_minutes(database: Database) -> None:
    store = WindowStore(database, BUCKET, ROLLUP)
    _fill(store, database, 150)
    blobs = list(store._blobs("m", "1", T0, T0 + 7_200))
    assert len(blobs) == 2  # two hourly rollups instead of 120 minute buckets


def test_widths_that_do_not_nest_are_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="multiple"):
        WindowStore(database, 60, 90)


def test_upgrading_rolls_up_the_minutes_stored_before(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = open_engine(url)
    migrate(engine, "0004")
    reference = ReferenceProfile.from_dict(reference_profile())
    # The table as revision 0004 left it: no width yet.
    old = sa.table(
        "window_profiles",
        *(sa.column(name) for name in ("model", "version", "bucket_start", "n_rows", "data")),
        sa.column("updated_at"),
    )
    with engine.begin() as connection:
        for minute in range(90):
            window = _window(reference, 10, minute)
            connection.execute(
                old.insert().values(
                    model="m",
                    version="1",
                    bucket_start=T0 + minute * BUCKET,
                    n_rows=10,
                    data=window.to_bytes(),
                    updated_at=0.0,
                )
            )
    migrate(engine)
    database = Database(engine)
    store = WindowStore(database, BUCKET, ROLLUP)
    assert store.merge_range("m", "1", None, None).n_rows == 900
    assert len(list(store._blobs("m", "1", T0, T0 + 3_600))) == 1
    assert store.merge_range("m", "1", T0, T0 + 3_600).n_rows == 600
    database.close()
