"""Simulated credit-risk traffic through the gateway, with delayed true labels.

Each applicant from :func:`orchard_pipelines.datasets.credit_risk.generate` is one OIP v2
``infer`` request (one input tensor per feature) with the applicant as the unit of
assignment (``X-Orchard-Unit``) and our own request id (``X-Request-Id``), so its true label
can follow ``label_delay`` seconds later through ``POST /v1/feedback``. Every answer is
counted by the version that served it (``X-Orchard-Model-Version``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

__all__ = ["MODEL", "TrafficSimulator", "TrafficStats", "VersionStats", "infer_body"]

MODEL: Final = "credit-risk"
UNKNOWN_VERSION: Final = "?"
_CHUNK: Final = 500  # applicants generated at a time
_FEEDBACK_BATCH: Final = 1000  # the gateway's most items per POST


@dataclass
class VersionStats:
    """Answers of one version: how many, and how many failed (5xx or no answer)."""

    requests: int = 0
    failed: int = 0


@dataclass
class TrafficStats:
    """What the simulator sent and got back."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    rejected: int = 0  # 4xx: our request was refused
    fallbacks: int = 0  # answered by another version after the chosen one failed
    labels_sent: int = 0
    feedback_errors: int = 0
    by_version: dict[str, VersionStats] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def record(self, now: float, status: int, version: str, fallback: bool) -> None:
        """Count one answer (``status`` 0: no answer at all)."""
        self._recent.append(now)
        stats = self.by_version.setdefault(version, VersionStats())
        stats.requests += 1
        if status >= 500 or status == 0:
            self.failed += 1
            stats.failed += 1
        elif status >= 400:
            self.rejected += 1
        else:
            self.ok += 1
        self.fallbacks += fallback

    def rate(self, now: float, window_s: float = 10.0) -> float:
        """Answers per second over the last ``window_s``."""
        while self._recent and self._recent[0] < now - window_s:
            self._recent.popleft()
        return len(self._recent) / window_s

    def failed_outside(self, version: str) -> int:
        """Failed answers served by any version but ``version`` (unknown versions count)."""
        return sum(s.failed for v, s in self.by_version.items() if v != version)


def _datatypes() -> dict[str, str]:
    from orchard_pipelines.datasets.credit_risk import (
        CATEGORICAL_FEATURES,
        INTEGER_FEATURES,
        NUMERIC_FEATURES,
    )

    types = {n: "INT64" if n in INTEGER_FEATURES else "FP64" for n in NUMERIC_FEATURES}
    return types | dict.fromkeys(CATEGORICAL_FEATURES, "BYTES")


def infer_body(request_id: str, row: dict[str, Any], datatypes: dict[str, str]) -> dict[str, Any]:
    """One applicant as an OIP v2 request: each feature its own one-element tensor."""
    inputs = []
    for name, datatype in datatypes.items():
        value = row[name]
        value = int(value) if datatype == "INT64" else value
        value = float(value) if datatype == "FP64" else value
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    return {"id": request_id, "inputs": inputs}


class TrafficSimulator:
    """Sends applicants at ``rate`` per second; :meth:`set_drift` changes them live.

    Args:
        gateway_url: The gateway.
        client: The async HTTP client (tests pass one bound to a fake gateway).
        rate: Requests per second.
        label_delay: Seconds between an answer and its true label.
        seed: Seed of the first chunk of applicants (each chunk takes the next one).
        max_in_flight: Most requests awaiting an answer; the rest of a tick is skipped.
    """

    def __init__(
        self,
        gateway_url: str,
        client: httpx.AsyncClient,
        *,
        rate: float = 25.0,
        label_delay: float = 2.0,
        seed: int = 1000,
        max_in_flight: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.rate = rate
        self.label_delay = label_delay
        self.stats = TrafficStats()
        self.shift = 0.0
        self.concept = 0.0
        self._client = client
        self._seed = seed
        self._clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._rows: deque[dict[str, Any]] = deque()
        self._labels: deque[tuple[float, str, int]] = deque()  # (due, request id, label)
        self._tasks: set[asyncio.Task[None]] = set()
        self._datatypes = _datatypes()
        self._applicant = 0

    def set_drift(self, shift: float, concept: float) -> None:
        """From the next applicant on, generate with this covariate shift and concept drift."""
        self.shift, self.concept = shift, concept
        self._rows.clear()

    def next_row(self) -> dict[str, Any]:
        """The next applicant (features and ``label``), at the current drift."""
        if not self._rows:
            from orchard_pipelines.datasets.credit_risk import generate

            frame = generate(
                _CHUNK, seed=self._seed, covariate_shift=self.shift, concept_drift=self.concept
            )
            self._seed += 1
            self._rows.extend(frame.to_dict(orient="records"))
        return self._rows.popleft()

    async def run(self, stop: asyncio.Event) -> None:
        """Send traffic and labels until ``stop`` is set, then wait for what is in flight."""
        # Its own event: the last labels go after the last answers are in.
        answered = asyncio.Event()
        feedback = asyncio.create_task(self._feedback_loop(answered))
        next_at = self._clock()
        try:
            while not stop.is_set():
                now = self._clock()
                while next_at <= now:
                    next_at += 1.0 / self.rate
                    if self._slots.locked():
                        continue  # the gateway is slower than the rate: skip, never queue up
                    await self._slots.acquire()
                    task = asyncio.create_task(self._one(self.next_row()))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - self._clock()))
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            answered.set()
            await feedback

    async def _one(self, row: dict[str, Any]) -> None:
        try:
            self._applicant += 1
            request_id = uuid.uuid4().hex
            headers = {"X-Request-Id": request_id, "X-Orchard-Unit": f"a{self._applicant}"}
            body = infer_body(request_id, row, self._datatypes)
            self.stats.sent += 1
            try:
                response = await self._client.post(
                    f"{self.gateway_url}/v2/models/{MODEL}/infer", json=body, headers=headers
                )
            except httpx.HTTPError:
                self.stats.record(self._clock(), 0, UNKNOWN_VERSION, False)
                return
            version = response.headers.get("x-orchard-model-version", UNKNOWN_VERSION)
            fallback = "x-orchard-fallback-from" in response.headers
            self.stats.record(self._clock(), response.status_code, version, fallback)
            if response.status_code == 200:
                due = self._clock() + self.label_delay
                self._labels.append((due, request_id, int(row["label"])))
        finally:
            self._slots.release()

    async def _feedback_loop(self, stop: asyncio.Event) -> None:
        while True:
            stopping = stop.is_set()
            await self.send_due_labels(flush=stopping)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def send_due_labels(self, *, flush: bool = False) -> None:
        """Send the labels whose delay is over (all of them with ``flush``), in batches."""
        now = self._clock()
        due: list[dict[str, Any]] = []
        while self._labels and (flush or self._labels[0][0] <= now):
            _, request_id, label = self._labels.popleft()
            due.append({"request_id": request_id, "label": label})
        for start in range(0, len(due), _FEEDBACK_BATCH):
            batch = due[start : start + _FEEDBACK_BATCH]
            try:
                response = await self._client.post(f"{self.gateway_url}/v1/feedback", json=batch)
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                self.stats.labels_sent += len(batch)
            else:
                self.stats.feedback_errors += len(batch)
