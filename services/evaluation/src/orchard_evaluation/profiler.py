"""Folding ingested events into window profiles, one per model version and time bucket.

Ingest only stores raw events (fast, idempotent). This loop then takes events not yet
profiled, in id order, groups them by (model, version, bucket), profiles each group against
the version's reference (its columns, kinds and histogram edges), merges the result into the
bucket's stored :class:`WindowProfile` and its rollup (see :mod:`windows`) and marks the
events profiled — all in one
transaction, so each event is counted exactly once even if the service stops halfway. On
PostgreSQL the events are claimed with ``FOR UPDATE SKIP LOCKED``, so several replicas can
run the loop side by side.

A version without a reference yet (MLflow not reachable, or not registered) keeps its events
waiting; after ``reference_wait_s`` they are marked profiled without a profile (counted as
``skipped``), so raw events never pile up forever. Failed predictions (4xx/5xx) have no
outputs to profile: they are marked at once (counted as ``failed``); they still count in
error rates, which read raw events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from orchard_core.profiles import ReferenceProfile, WindowProfile
from orchard_evaluation.db import Database
from orchard_evaluation.metrics import EvaluationMetrics
from orchard_evaluation.references import ReferenceStore
from orchard_evaluation.rows import PREDICTION, predicted_class, split_columns
from orchard_evaluation.tables import Event
from orchard_evaluation.windows import WindowStore

__all__ = ["WindowProfiler"]

_log = logging.getLogger("orchard.evaluation.profiler")


class WindowProfiler:
    """See the module docs; :meth:`run_once` is one pass, safe to call from a thread."""

    def __init__(
        self,
        database: Database,
        references: ReferenceStore,
        metrics: EvaluationMetrics,
        windows: WindowStore,
        *,
        batch_size: int,
        reference_wait_s: float,
    ) -> None:
        self._db = database
        self._references = references
        self._metrics = metrics
        self._windows = windows
        self._batch_size = batch_size
        self._reference_wait_s = reference_wait_s
        # One pass at a time in this process: SQLite has no SKIP LOCKED, and two passes
        # reading the same waiting events would count them twice.
        self._lock = threading.Lock()

    def run_once(self, now: float | None = None, after_id: int = 0) -> tuple[int, int]:
        """Profile one batch of waiting events with ids above ``after_id``.

        Returns how many were fetched and the last id fetched (the cursor for the next
        batch): events still waiting for their reference stay behind, never in the way.
        """
        at = time.time() if now is None else now
        with self._lock:
            # References first, each fetch and store in its own short transaction: fetched
            # inside the profiling transaction, a new version's reference would be written
            # while that transaction holds SQLite's write lock (from profiling the versions
            # before it in the batch) and wait on it until "database is locked", every pass.
            self._load_references(after_id, at)
            return self._profile_batch(at, after_id)

    def _load_references(self, after_id: int, at: float) -> None:
        with self._db.session() as session:
            waiting = session.execute(
                select(Event.model, Event.version)
                .where(Event.profiled.is_(False), Event.id > after_id)
                .distinct()
            ).all()
        for model, version in waiting:
            self._references.get(model, version, now=at)

    def _profile_batch(self, at: float, after_id: int) -> tuple[int, int]:
        with self._db.session() as session, session.begin():
            query = (
                select(Event)
                .where(Event.profiled.is_(False), Event.id > after_id)
                .order_by(Event.id)
                .limit(self._batch_size)
            )
            if self._db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            events = list(session.scalars(query))
            groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
            done: list[int] = []
            for event in events:
                if event.status >= 400:
                    done.append(event.id)
                    self._metrics.profiled.labels("failed").inc()
                else:
                    groups[(event.model, event.version)].append(event)
            for (model, version), members in groups.items():
                reference = self._references.get(model, version, now=at)
                if reference is None:
                    stale = [e.id for e in members if at - e.received_at > self._reference_wait_s]
                    done.extend(stale)
                    self._metrics.profiled.labels("skipped").inc(len(stale))
                    continue
                by_bucket: dict[int, list[Event]] = defaultdict(list)
                for event in members:
                    by_bucket[self._windows.bucket_of(event.ts)].append(event)
                for bucket, bucket_events in by_bucket.items():
                    window = _profile(reference.profile, bucket_events)
                    self._windows.add(session, model, version, bucket, window, at)
                    done.extend(e.id for e in bucket_events)
                    self._metrics.profiled.labels("profiled").inc(len(bucket_events))
            if done:
                session.execute(update(Event).where(Event.id.in_(done)).values(profiled=True))
            return len(events), (events[-1].id if events else after_id)


def _profile(reference: ReferenceProfile, events: Sequence[Event]) -> WindowProfile:
    """One window profile of the rows of ``events`` (their columns laid end to end).

    When the reference profiles the predicted class (``prediction``) and an event does not
    carry it under that name, it is taken from the event's ``predict`` output or the argmax
    of its class scores (see :func:`~orchard_evaluation.rows.predicted_class`), so prediction
    drift works whatever the served model calls its outputs.
    """
    derive = PREDICTION in reference.outputs
    names_in = {name for e in events for name in e.inputs}
    names_out = {name for e in events for name in e.outputs} | ({PREDICTION} if derive else set())
    features: dict[str, list[Any]] = {name: [] for name in names_in}
    outputs: dict[str, list[Any]] = {name: [] for name in names_out}
    total = 0
    for event in events:
        n = event.n_rows
        total += n
        produced = event.outputs
        if derive and PREDICTION not in produced:
            rows = split_columns(produced, n)
            produced = {**produced, PREDICTION: [predicted_class(row) for row in rows]}
        for columns, source in ((features, event.inputs), (outputs, produced)):
            for name, values in columns.items():
                given = source.get(name)
                # A column that is not one value per row (a tensor) cannot be profiled
                # per row: its rows count as missing.
                values.extend(given if given is not None and len(given) == n else [None] * n)
    return WindowProfile.build(reference, features, outputs, n_rows=total)
