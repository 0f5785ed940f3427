"""Which upstream HTTP client a proxy hop should use, by measurement.

One minimal proxy hop per client (``proxy_hop.py``: aiohttp ``ClientSession``,
``httpx.AsyncClient``, and httpx over ``httpx_aiohttp.AiohttpTransport``) forwards to the same
runtime; wrk drives each with the same load at 16 and 64 connections, the hops in turn at each
count. ``run.py`` runs this after the gateway runs (skip it with ``--no-clients``); the
report's "Upstream client" table comes from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from benchmarks.common.measure import measure
from benchmarks.common.servers import RunningServer, ServerSpec
from benchmarks.common.wrk import wrk_threads

__all__ = ["CLIENTS", "CLIENT_CONNECTIONS", "compare_clients", "hop_specs"]

CLIENTS: Final = ("aiohttp", "httpx", "httpx-aiohttp")
CLIENT_CONNECTIONS: Final = (16, 64)
_HOP: Final = Path(__file__).resolve().parent / "proxy_hop.py"
_DESCRIPTIONS: Final = {
    "aiohttp": "aiohttp.ClientSession (TCPConnector limit 100)",
    "httpx": "httpx.AsyncClient (Limits 100/100 keep-alive)",
    "httpx-aiohttp": "httpx.AsyncClient over httpx_aiohttp.AiohttpTransport (limit 100)",
}


def hop_specs(backend: str) -> list[ServerSpec]:
    """One proxy hop per client, each forwarding to ``backend``."""
    return [
        ServerSpec(
            name=f"hop-{client}",
            description=f"proxy_hop.py (Starlette on uvicorn): {_DESCRIPTIONS[client]}",
            command=(
                sys.executable,
                str(_HOP),
                "--client",
                client,
                "--backend",
                backend,
                "--port",
                "{port}",
            ),
        )
        for client in CLIENTS
    ]


def compare_clients(
    wrk: str,
    hops: list[RunningServer],
    runtime: RunningServer,
    body: Path,
    args: argparse.Namespace,
    *,
    path: str,
) -> list[dict[str, Any]]:
    """Measure each hop at each of ``CLIENT_CONNECTIONS``, ``args.repeats`` times, the hops in
    turn; one result row per run."""
    rows = []
    for connections in CLIENT_CONNECTIONS:
        for _ in range(args.repeats):
            rows += [_measure_hop(wrk, hop, runtime, body, connections, args, path) for hop in hops]
    return rows


def _measure_hop(
    wrk: str,
    hop: RunningServer,
    runtime: RunningServer,
    body: Path,
    connections: int,
    args: argparse.Namespace,
    path: str,
) -> dict[str, Any]:
    done = measure(
        wrk,
        hop.base_url + path,
        body,
        connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
        processes=[hop, runtime],
    )
    run = done.run
    client = hop.spec.name.removeprefix("hop-")
    print(
        f"client {client:14} c={connections:<3} {run.throughput_rps:8.1f} req/s  "
        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  errors {run.errors}",
        flush=True,
    )
    return {
        "client": client,
        "connections": connections,
        "threads": wrk_threads(connections),
        **run.to_dict(),
        "cpu_s": {name: round(value, 3) for name, value in done.cpu_s.items()},
        "machine_busy_cpu_s": round(done.machine_busy_cpu_s, 3),
        "wrk_cpu_s": round(done.wrk_cpu_s, 3),
        "other_cpu_s": round(done.other_cpu_s, 3),
    }
