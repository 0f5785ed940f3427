"""Where window profiles are kept: fine buckets, hourly rollups, and merges over a range.

Each batch of profiled events is merged into its fine bucket (``bucket_s`` wide, a minute by
default) *and* into the rollup bucket holding it (``rollup_s``, an hour by default), so a
rollup always equals the merge of its fine buckets. A range ``[since, until)`` is then
answered with the rollups that lie wholly inside it plus the fine buckets at its ragged
edges: a day is 24 rollups and at most 2 x 59 minutes, not 1,440 minutes, and the merge
streams bucket by bucket, so its memory is one merged profile plus one bucket, whatever
the number of rows. A range covers the buckets that *start* in it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Final

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from orchard_core.profiles import WindowProfile, merge_windows
from orchard_evaluation.db import Database
from orchard_evaluation.tables import WindowProfileRow

__all__ = ["WindowStore"]

_log = logging.getLogger("orchard.evaluation.windows")
# Buckets decoded and merged at a time: bounds memory while keeping merges batched.
_MERGE_CHUNK: Final = 32


class WindowStore:
    """Reads and writes the ``window_profiles`` table at two widths."""

    def __init__(self, database: Database, bucket_s: int, rollup_s: int) -> None:
        if rollup_s % bucket_s:
            raise ValueError(f"rollup_s ({rollup_s}) must be a multiple of bucket_s ({bucket_s})")
        self._db = database
        self.bucket_s = bucket_s
        self.rollup_s = rollup_s

    def bucket_of(self, ts: float) -> int:
        """The start (Unix seconds) of the fine bucket holding ``ts``."""
        return int(math.floor(ts / self.bucket_s) * self.bucket_s)

    def add(
        self,
        session: Session,
        model: str,
        version: str,
        bucket_start: int,
        window: WindowProfile,
        at: float,
    ) -> None:
        """Merge ``window`` (rows of one fine bucket) into that bucket and its rollup."""
        rollup_start = bucket_start - bucket_start % self.rollup_s
        for width, start in ((self.bucket_s, bucket_start), (self.rollup_s, rollup_start)):
            self._merge_into(session, model, version, width, start, window, at)

    def _merge_into(
        self,
        session: Session,
        model: str,
        version: str,
        width: int,
        start: int,
        window: WindowProfile,
        at: float,
    ) -> None:
        key = (model, version, width, start)
        row = session.get(WindowProfileRow, key, with_for_update=self._db.dialect == "postgresql")
        if row is None:
            session.add(
                WindowProfileRow(
                    model=model,
                    version=version,
                    width_s=width,
                    bucket_start=start,
                    n_rows=window.n_rows,
                    data=window.to_bytes(),
                    updated_at=at,
                )
            )
            session.flush()
            return
        try:
            merged = WindowProfile.from_bytes(row.data).merge(window)
        except ValueError as exc:  # a reference replaced with other edges: start afresh
            _log.warning("window %s cannot be merged (%s); starting it again", key, exc)
            merged = window
        row.n_rows, row.data, row.updated_at = merged.n_rows, merged.to_bytes(), at

    def merge_range(
        self, model: str, version: str, since: float | None, until: float | None
    ) -> WindowProfile | None:
        """The merge of a version's buckets that start in ``[since, until)``; None if none."""
        merged: WindowProfile | None = None
        chunk: list[WindowProfile] = []
        for blob in self._blobs(model, version, since, until):
            chunk.append(WindowProfile.from_bytes(blob))
            if len(chunk) == _MERGE_CHUNK:
                merged = merge_windows([*([merged] if merged else []), *chunk])
                chunk = []
        if chunk:
            merged = merge_windows([*([merged] if merged else []), *chunk])
        return merged

    def _blobs(
        self, model: str, version: str, since: float | None, until: float | None
    ) -> Iterator[bytes]:
        # Rollups wholly inside the range, then the fine buckets outside them.
        low = -math.inf if since is None else math.ceil(since / self.rollup_s) * self.rollup_s
        high = math.inf if until is None else math.floor(until / self.rollup_s) * self.rollup_s
        parts: list[Select[bytes]] = []
        if low < high:
            parts.append(self._query(model, version, self.rollup_s, low, high))
            if math.isfinite(low):  # the ragged start, before the first whole rollup
                parts.append(self._query(model, version, self.bucket_s, since, low))
            if math.isfinite(high):  # the ragged end, after the last one
                parts.append(self._query(model, version, self.bucket_s, high, until))
        else:
            parts.append(self._query(model, version, self.bucket_s, since, until))
        with self._db.session() as session:
            for query in parts:
                yield from session.scalars(query.execution_options(yield_per=_MERGE_CHUNK))

    @staticmethod
    def _query(
        model: str, version: str, width: int, low: float | None, high: float | None
    ) -> Select[bytes]:
        query = select(WindowProfileRow.data).where(
            WindowProfileRow.model == model,
            WindowProfileRow.version == version,
            WindowProfileRow.width_s == width,
        )
        if low is not None and math.isfinite(low):
            query = query.where(WindowProfileRow.bucket_start >= low)
        if high is not None and math.isfinite(high):
            query = query.where(WindowProfileRow.bucket_start < high)
        return query.order_by(WindowProfileRow.bucket_start)

    def active_versions(self, since: float, until: float | None = None) -> list[tuple[str, str]]:
        """The (model, version) pairs with a fine bucket starting in ``[since, until)``."""
        query = select(WindowProfileRow.model, WindowProfileRow.version).where(
            WindowProfileRow.width_s == self.bucket_s, WindowProfileRow.bucket_start >= since
        )
        if until is not None:
            query = query.where(WindowProfileRow.bucket_start < until)
        with self._db.session() as session:
            rows = session.execute(query.distinct()).all()
        return sorted((row.model, row.version) for row in rows)
