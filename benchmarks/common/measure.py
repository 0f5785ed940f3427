"""One measurement: warm-up, drain, a timed wrk run with the CPU each process used, drain."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common.servers import RunningServer, busy_cpu_seconds
from benchmarks.common.wrk import run_wrk
from benchmarks.common.wrk_output import WrkResult

__all__ = ["Measurement", "measure"]


@dataclass(frozen=True)
class Measurement:
    """A wrk run, the CPU seconds each process, wrk itself and the whole machine used."""

    run: WrkResult
    cpu_s: dict[str, float]
    machine_busy_cpu_s: float
    wrk_cpu_s: float

    @property
    def other_cpu_s(self) -> float:
        """CPU the machine spent on neither wrk nor ``cpu_s``'s processes: other work, noise."""
        return max(0.0, self.machine_busy_cpu_s - self.wrk_cpu_s - sum(self.cpu_s.values()))


def measure(
    wrk: str,
    url: str,
    body: Path,
    connections: int,
    *,
    duration_s: float,
    warmup_s: float,
    processes: Sequence[RunningServer],
) -> Measurement:
    """Warm up, time one wrk run against ``url``, and charge CPU to ``processes`` by name.

    Every process in the request's path is drained (see ``RunningServer.wait_idle``) before
    and after the timed run, so that no run pays for the requests its warm-up or the run
    before it left queued.
    """
    if warmup_s > 0:
        run_wrk(wrk, url, body, connections, warmup_s)
    for process in processes:
        process.wait_idle()
    cpu = {p.spec.name: p.cpu_seconds() for p in processes}
    machine, children = busy_cpu_seconds(), _children_cpu_seconds()
    run = run_wrk(wrk, url, body, connections, duration_s)
    cpu = {p.spec.name: p.cpu_seconds() - cpu[p.spec.name] for p in processes}
    machine, children = busy_cpu_seconds() - machine, _children_cpu_seconds() - children
    for process in processes:
        process.wait_idle()
    return Measurement(run=run, cpu_s=cpu, machine_busy_cpu_s=machine, wrk_cpu_s=children)


def _children_cpu_seconds() -> float:
    # Only wrk is waited for during the run, so the growth is wrk's CPU time.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
