"""``orchard status``: is the platform in a data folder running, and are its services healthy?"""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from orchard_cli.lockfile import is_running, read_state

__all__ = ["NOT_RUNNING", "run_status"]

# The LSB exit status for "program is not running", as `systemctl status` uses it.
NOT_RUNNING = 3


def _probe(client: httpx.Client, url: str) -> str:
    try:
        response = client.get(url)
    except httpx.HTTPError as e:
        return f"down ({type(e).__name__})"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


def run_status(data_dir: Path, console: Console, client: httpx.Client | None = None) -> int:
    """Print the platform's state; returns 0 when running and every service answers ready.

    Returns 1 when it runs but a service is not ready, and 3 when it is not running.
    """
    if not is_running(data_dir):
        console.print(f"Orchard is not running (data folder {data_dir}).", markup=False)
        return NOT_RUNNING
    state = read_state(data_dir)
    if state is None:
        console.print(f"Orchard is starting (data folder {data_dir}).", markup=False)
        return 1
    console.print(
        f"Orchard is {state.status} (pid {state.pid}, data folder {state.data_dir}).",
        markup=False,
    )
    table = Table("service", "url", "pid", "health")
    healthy = True
    with client or httpx.Client(timeout=2.0, trust_env=False) as http:
        for name, service in state.services.items():
            health = _probe(http, service.health_url)
            healthy = healthy and health == "ready"
            pid = "" if service.pid is None else str(service.pid)
            table.add_row(name, service.url, pid, health)
    console.print(table)
    return 0 if healthy else 1
