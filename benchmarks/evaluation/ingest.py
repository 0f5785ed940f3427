"""Ingest throughput: the real evaluation service, batches of events from concurrent clients.

The service (``python -m orchard_evaluation``, a fresh SQLite file, its background profiler on
at its defaults) is given the reference profile of the 20 features, then ``clients`` threads,
each on one kept-alive connection, post batches of ``batch`` one-row events for
``duration_s``. Accepted events per second are the service's answer counts; the profiler's
rate is read from ``orchard_evaluation_events_profiled_total`` on ``/metrics``, during the
load and until it has caught up after it.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
from benchmarks.common.servers import RunningServer, ServerSpec, free_port
from benchmarks.evaluation.data import FEATURES, columns, kinds

__all__ = [
    "EventBodies",
    "evaluation_spec",
    "measure_ingest",
    "parse_profiled",
    "wait_ready",
]

MODEL: Final = "bench-ingest"
VERSION: Final = "1"
# How long to wait, at most, for the profiler to fold in what was accepted.
CATCH_UP_S: Final = 120.0


def evaluation_spec(database: Path) -> ServerSpec:
    """The evaluation service at its defaults on a fresh SQLite file, logging at WARNING."""
    return ServerSpec(
        name="evaluation",
        description=(
            "python -m orchard_evaluation at its defaults (profiler every 2 s, 5,000 events a "
            "pass, 60 s buckets), SQLite file, no MLflow"
        ),
        command=(sys.executable, "-m", "orchard_evaluation"),
        env={
            "ORCHARD_EVALUATION_PORT": "{port}",
            "ORCHARD_EVALUATION_DATABASE_URL": f"sqlite:///{database}",
            "ORCHARD_EVALUATION_LOG_LEVEL": "WARNING",
            "ORCHARD_EVALUATION_ACCESS_LOG": "false",
        },
    )


def wait_ready(server: RunningServer, timeout_s: float = 60.0) -> None:
    """Poll ``/readyz`` until it answers 200.

    Raises:
        RuntimeError: it did not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(server.base_url + "/readyz", timeout=5) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"evaluation not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


class EventBodies:
    """Request bodies of ``batch`` one-row events with fresh request ids, cheap to make.

    Each event's JSON is encoded once; a body only splices ids in, so the clients spend their
    CPU on HTTP, not on encoding, and ingest never sees a duplicate.
    """

    def __init__(self, batch: int, seed: int = 3) -> None:
        rows = columns(batch, seed, shifted=False)
        prediction = np.random.default_rng(seed).random(batch)
        now = time.time()
        self._fragments = []
        for i in range(batch):
            event = {
                "ts": now,
                "model": MODEL,
                "version": VERSION,
                "route_arm": "champion",
                "inputs": {name: [_plain(rows[name][i])] for name in FEATURES},
                "outputs": {"prediction": [float(prediction[i])]},
                "latency_ms": 3.0,
                "status": 200,
                "shadow": False,
            }
            self._fragments.append(b"," + orjson.dumps(event)[1:])
        self._lock = threading.Lock()
        self._next = 0

    @property
    def batch(self) -> int:
        return len(self._fragments)

    def next_body(self, client: int) -> bytes:
        """The next batch, its ids unique across every client and call."""
        with self._lock:
            self._next += 1
            number = self._next
        prefix = f'{{"request_id":"c{client}-b{number}-'.encode()
        return (
            b"["
            + b",".join(prefix + str(i).encode() + b'"' + f for i, f in enumerate(self._fragments))
            + b"]"
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def reference_body(rows: int = 20_000) -> bytes:
    """``PUT /v1/profiles`` body: the features' reference and a prediction output."""
    from orchard_core.profiles import ReferenceProfile, profile_columns

    profile = ReferenceProfile(
        n_rows=rows,
        features=profile_columns(columns(rows, 1, shifted=False), kinds()),
        outputs=profile_columns({"prediction": np.random.default_rng(1).random(rows)}),
    )
    return json.dumps({"profile": profile.to_dict()}).encode()


def parse_profiled(text: str) -> dict[str, float]:
    """``{outcome: count}`` of ``orchard_evaluation_events_profiled_total`` in Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "orchard_evaluation_events_profiled":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["outcome"]] = sample.value
    return found


def _profiled(server: RunningServer) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as answer:  # noqa: S310
        return sum(parse_profiled(answer.read().decode()).values())


def _client(
    port: int, bodies: EventBodies, client: int, stop_at: float, counts: list[dict[str, int]]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    tally = {"accepted": 0, "requests": 0, "errors": 0}
    headers = {"Content-Type": "application/json"}
    try:
        while time.monotonic() < stop_at:
            connection.request("POST", "/v1/events", bodies.next_body(client), headers)
            response = connection.getresponse()
            answer = response.read()
            tally["requests"] += 1
            if response.status == 200:
                tally["accepted"] += int(orjson.loads(answer)["accepted"])
            else:
                tally["errors"] += 1
    finally:
        connection.close()
        counts.append(tally)


def measure_ingest(
    work_dir: Path, *, clients: int, batch: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    """Start the service, load it for ``duration_s``, and return the rates (see module docs)."""
    bodies = EventBodies(batch)
    database = work_dir / "ingest.db"
    for leftover in work_dir.glob("ingest.db*"):
        leftover.unlink()
    spec = evaluation_spec(database)
    with RunningServer(spec, free_port(), work_dir / "logs" / "evaluation.log") as server:
        wait_ready(server)
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{server.base_url}/v1/profiles/{MODEL}/{VERSION}",
            data=reference_body(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
        if warmup_s > 0:
            _load(server.port, bodies, clients, warmup_s)
        warm_profiled = _wait_caught_up(server, None)
        cpu_before, profiled_before = server.cpu_seconds(), _profiled(server)
        started = time.monotonic()
        counts = _load(server.port, bodies, clients, duration_s)
        elapsed = time.monotonic() - started
        cpu_during = server.cpu_seconds() - cpu_before
        profiled_during = _profiled(server) - profiled_before
        accepted = sum(c["accepted"] for c in counts)
        target = profiled_before + accepted
        caught_up = _wait_caught_up(server, target)
        catch_up_s = time.monotonic() - started - elapsed
        profiled_total = _profiled(server) - profiled_before
    return {
        "clients": clients,
        "batch": batch,
        "duration_s": elapsed,
        "requests": sum(c["requests"] for c in counts),
        "errors": sum(c["errors"] for c in counts),
        "accepted": accepted,
        "accepted_per_s": accepted / elapsed,
        "server_cpu_cores": cpu_during / elapsed,
        "profiled_during": profiled_during,
        "profiled_during_per_s": profiled_during / elapsed,
        "profiled_total": profiled_total,
        "catch_up_s": catch_up_s,
        "caught_up": caught_up is not None,
        "profiled_overall_per_s": profiled_total / (elapsed + catch_up_s),
        "warmup_profiled": warm_profiled,
    }


def _load(port: int, bodies: EventBodies, clients: int, duration_s: float) -> list[dict[str, int]]:
    stop_at = time.monotonic() + duration_s
    counts: list[dict[str, int]] = []
    threads = [
        threading.Thread(target=_client, args=(port, bodies, i, stop_at, counts), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def _wait_caught_up(server: RunningServer, target: float | None) -> float | None:
    """Wait until the profiler has folded in ``target`` events (None: until it stops moving);
    return the count, or None when it did not within ``CATCH_UP_S``."""
    deadline = time.monotonic() + CATCH_UP_S
    last = -1.0
    while time.monotonic() < deadline:
        done = _profiled(server)
        if (target is not None and done >= target) or (target is None and done == last):
            return done
        last = done
        time.sleep(0.5 if target is not None else 2.5)
    return None
