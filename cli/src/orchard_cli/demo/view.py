"""What the demo shows: traffic, errors by version, routes, triggers, runs and decisions.

:func:`watch_platform` polls retraining once a second and turns what changed into notes
(each new trigger, pipeline run state and rollout decision); a view shows the notes and the
latest :class:`Snapshot`. :class:`LiveView` is a rich live dashboard; :class:`PlainView`
prints plain lines (``--quiet``, logs, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from orchard_cli.demo.scenarios import ScenarioResult
from orchard_cli.demo.traffic import MODEL, TrafficStats
from orchard_cli.retraining_client import RetrainingError
from orchard_cli.rollout_watch import decision_line

__all__ = ["DemoView", "LiveView", "PlainView", "Snapshot", "watch_platform", "weights_text"]


@dataclass
class Snapshot:
    """The latest of everything the view shows."""

    stats: TrafficStats
    rate: float = 0.0
    routes: dict[str, Any] = field(default_factory=dict)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)


class DemoView(Protocol):
    """Where the demo's notes, snapshots and summary go."""

    def note(self, text: str) -> None: ...
    def refresh(self, snapshot: Snapshot) -> None: ...
    def summary(self, results: Sequence[ScenarioResult], stats: TrafficStats) -> None: ...


class Watched(Protocol):
    """What :func:`watch_platform` reads from retraining."""

    async def routes(self) -> dict[str, Any]: ...
    async def triggers(self, model: str) -> list[dict[str, Any]]: ...
    async def pipeline_runs(self, model: str) -> list[dict[str, Any]]: ...
    async def rollouts(self, model: str) -> list[dict[str, Any]]: ...


def weights_text(routes: dict[str, Any], model: str = MODEL) -> str:
    """``v3 champion 80% · v4 canary 20%`` (plus mirrors) for ``model``."""
    entry = (routes.get("models") or {}).get(model) or {}
    parts = [
        f"v{v.get('version')} {v.get('role', '')} {float(v.get('weight') or 0):g}%"
        for v in entry.get("versions") or []
    ]
    parts += [
        f"v{m.get('version')} mirror {m.get('percent', 0):g}%" for m in entry.get("mirrors") or []
    ]
    return " · ".join(parts) or "-"


def _errors_text(stats: TrafficStats) -> str:
    return (
        ", ".join(f"v{v} {s.failed}/{s.requests}" for v, s in sorted(stats.by_version.items()))
        or "-"
    )


class _Changes:
    """Remembers what was already noted, so each change is noted once."""

    def __init__(self) -> None:
        self.triggers: set[Any] = set()
        self.runs: dict[Any, tuple[Any, Any]] = {}
        self.decisions: dict[Any, int] = {}
        self.first = True

    def notes(self, snapshot: Snapshot) -> list[str]:
        found = []
        for trigger in reversed(snapshot.triggers):
            if trigger.get("id") not in self.triggers:
                self.triggers.add(trigger.get("id"))
                if not self.first:
                    found.append(
                        f"trigger {trigger.get('kind')}: {trigger.get('reason')} "
                        f"→ {trigger.get('outcome')}"
                    )
        for run in reversed(snapshot.runs):
            state = (run.get("status"), run.get("stage"))
            if self.runs.get(run.get("id")) != state:
                self.runs[run.get("id")] = state
                if not self.first:
                    found.append(_run_text(run))
        for rollout in reversed(snapshot.rollouts):
            decisions = (rollout.get("state") or {}).get("decisions") or []
            seen = self.decisions.get(rollout.get("id"), 0 if not self.first else len(decisions))
            for decision in decisions[seen:]:
                found.append(f"rollout {rollout.get('id')}: {decision_line(decision, rollout)}")
            self.decisions[rollout.get("id")] = len(decisions)
        self.first = False
        return found


def _run_text(run: dict[str, Any]) -> str:
    text = f"pipeline run {run.get('id')}: {run.get('status')}"
    if run.get("stage"):
        text += f" ({run.get('stage')}, {float(run.get('progress') or 0):.0%})"
    if run.get("candidate_version"):
        text += f" candidate v{run['candidate_version']}"
    if run.get("gate_verdict"):
        text += f" gate {run['gate_verdict']}"
    if run.get("error"):
        text += f" error: {run['error']}"
    return text


async def watch_platform(
    platform: Watched,
    stats: TrafficStats,
    view: DemoView,
    stop: asyncio.Event,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll retraining every ``interval_s`` until ``stop``; note changes, refresh the view."""
    changes = _Changes()
    snapshot = Snapshot(stats)
    down = False
    while not stop.is_set():
        try:
            snapshot.routes = await platform.routes()
            snapshot.triggers = await platform.triggers(MODEL)
            snapshot.runs = await platform.pipeline_runs(MODEL)
            snapshot.rollouts = await platform.rollouts(MODEL)
            if down:
                view.note("retraining answers again")
            down = False
            for text in changes.notes(snapshot):
                view.note(text)
        except RetrainingError as e:
            if not down:
                view.note(f"cannot read retraining: {e}")
            down = True
        snapshot.rate = stats.rate(clock())
        view.refresh(snapshot)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


def _stamp(text: str) -> str:
    return f"{datetime.now().strftime('%H:%M:%S')}  {text}"


def _summary_lines(results: Sequence[ScenarioResult], stats: TrafficStats) -> list[str]:
    lines = [
        f"traffic: {stats.sent} sent, {stats.ok} ok, {stats.failed} failed "
        f"(by version {_errors_text(stats)}), {stats.labels_sent} labels sent"
    ]
    lines += [f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.reason}" for r in results]
    return lines


class PlainView:
    """Plain lines: each note, a traffic line every ``every_s`` seconds, then the summary."""

    def __init__(
        self, console: Console, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._console = console
        self._every_s = every_s
        self._clock = clock
        self._last = -every_s

    def _print(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """Print a note with the time."""
        self._print(_stamp(text))

    def refresh(self, snapshot: Snapshot) -> None:
        """Print the traffic line, at most every ``every_s``."""
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            self.note(
                f"traffic {snapshot.rate:.1f} req/s, failed by version "
                f"{_errors_text(snapshot.stats)}; routes {weights_text(snapshot.routes)}"
            )

    def summary(self, results: Sequence[ScenarioResult], stats: TrafficStats) -> None:
        """Print the outcome of every scenario."""
        for line in _summary_lines(results, stats):
            self._print(line)


class LiveView:
    """A rich live dashboard; use as a context manager around the demo."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._notes: deque[str] = deque(maxlen=12)
        self._snapshot: Snapshot | None = None
        self._live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def note(self, text: str) -> None:
        """Add a line to the event log."""
        self._notes.append(_stamp(text))
        self._render()

    def refresh(self, snapshot: Snapshot) -> None:
        """Show the latest snapshot."""
        self._snapshot = snapshot
        self._render()

    def _render(self) -> None:
        table = Table(show_header=False, box=None, padding=(0, 1))
        snap = self._snapshot
        if snap is not None:
            stats = snap.stats
            table.add_row("traffic", f"{snap.rate:.1f} req/s · {stats.sent} sent · {stats.ok} ok")
            table.add_row("failed", _errors_text(stats))
            table.add_row("routes", weights_text(snap.routes))
            for trigger in snap.triggers[:2]:
                table.add_row("trigger", f"{trigger.get('kind')} → {trigger.get('outcome')}")
            for run in snap.runs[:2]:
                table.add_row("run", _run_text(run))
        log = Table(show_header=False, box=None, padding=(0, 1))
        for line in self._notes:
            log.add_row(line)
        self._live.update(Group(table, log))

    def summary(self, results: Sequence[ScenarioResult], stats: TrafficStats) -> None:
        """Print the outcome of every scenario under the dashboard."""
        for line in _summary_lines(results, stats):
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
