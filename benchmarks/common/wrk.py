"""Running wrk with ``wrk_post.lua``: one POST body, a connection count and a duration."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path
from typing import Final

from benchmarks.common.wrk_output import WrkResult, parse_wrk_output

__all__ = ["LUA_SCRIPT", "connection_list", "find_wrk", "run_wrk", "wrk_threads", "wrk_version"]

LUA_SCRIPT: Final = Path(__file__).resolve().parent / "wrk_post.lua"


def find_wrk() -> str | None:
    """The wrk executable on PATH, or None."""
    return shutil.which("wrk")


def wrk_threads(connections: int) -> int:
    """wrk threads for ``connections``: two at most, as wrk shares the cores under test."""
    return min(2, connections)


def run_wrk(wrk: str, url: str, body: Path, connections: int, duration_s: float) -> WrkResult:
    """POST ``body`` to ``url`` over ``connections`` keep-alive connections for ``duration_s``.

    Raises:
        RuntimeError: wrk exited with an error.
        WrkOutputError: its output lacks the line ``wrk_post.lua`` prints.
    """
    command = [
        wrk,
        f"-t{wrk_threads(connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(body),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk_output(done.stdout)


def wrk_version(wrk: str) -> list[str]:
    """wrk's version line (a list of one line, empty when it cannot be read)."""
    try:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return []
    return (done.stdout or done.stderr).splitlines()[0:1]


def connection_list(text: str) -> list[int]:
    """argparse type: ``"1,16,64"`` as ``[1, 16, 64]``."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values
