"""The machine a benchmark runs on: its facts for the report, and waiting for it to be quiet."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.common.servers import busy_cpu_seconds

__all__ = ["command_output", "git_revision", "machine_facts", "wait_for_quiet"]


def machine_facts(packages: Iterable[str]) -> dict[str, Any]:
    """CPU, cores, memory, kernel, Python, the versions of ``packages`` and the load average."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    versions = {}
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_end": list(os.getloadavg()),
    }


def wait_for_quiet(max_wait_s: float, quiet_cores: float = 0.3) -> float:
    """Wait up to ``max_wait_s`` for other work on the machine to stop; return its last CPU use.

    The servers and wrk need every core; anything else running skews the numbers.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before = busy_cpu_seconds()
        time.sleep(2)
        busy = (busy_cpu_seconds() - before) / 2
        if busy < quiet_cores or time.monotonic() > deadline:
            break
        print(f"== other processes use {busy:.1f} cores; waiting for quiet", flush=True)
    if busy >= quiet_cores:
        print(
            f"warning: other processes use {busy:.1f} of {os.cpu_count()} cores; "
            "the results will be noisy",
            file=sys.stderr,
        )
    return busy


def git_revision(root: Path, watched: str = "services") -> str:
    """The short commit of ``root``, noting uncommitted changes under ``watched``."""
    revision = command_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"]).strip()
    dirty = command_output(["git", "-C", str(root), "status", "--porcelain", "--", watched])
    return f"{revision}{f' + uncommitted changes in {watched}/' if dirty.strip() else ''}"


def command_output(command: list[str]) -> str:
    """What ``command`` prints (stdout, else stderr); empty when it cannot be run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return ""
    return done.stdout or done.stderr
