"""wrk's output, as printed with ``wrk_post.lua``, turned into a :class:`WrkResult`.

The Lua ``done()`` hook prints one ``WRK_RESULT {json}`` line with exact counts and latency
percentiles (wrk's own text rounds them to two digits and a unit); the human-readable
``Requests/sec:`` line is read too, as a cross-check that the line belongs to this run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WrkOutputError", "WrkResult", "parse_wrk_output"]

_RESULT_PREFIX = "WRK_RESULT "
_RPS_LINE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)


class WrkOutputError(ValueError):
    """wrk's output lacks the line ``wrk_post.lua`` prints, or the line is malformed."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: counts, throughput and latency percentiles (milliseconds)."""

    duration_s: float
    requests: int
    throughput_rps: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p99_9_ms: float
    max_ms: float
    mean_ms: float

    @property
    def errors(self) -> int:
        """Failed requests: non-2xx answers plus connect/read/write/timeout errors."""
        return self.non_2xx + self.socket_errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def parse_wrk_output(stdout: str) -> WrkResult:
    """Parse the stdout of ``wrk ... -s wrk_post.lua``.

    Raises:
        WrkOutputError: the ``WRK_RESULT`` line is missing or malformed.
    """
    lines = [line for line in stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if not lines:
        raise WrkOutputError("no WRK_RESULT line: was wrk run with -s wrk_post.lua?")
    try:
        raw = json.loads(lines[-1][len(_RESULT_PREFIX) :])
        duration_s = raw["duration_us"] / 1e6
        requests = int(raw["requests"])
        latency = raw["latency_us"]
        errors = raw["errors"]
        # "status" errors are wrk's count of answers >= 400, already in non_2xx.
        socket_errors = sum(int(errors[k]) for k in ("connect", "read", "write", "timeout"))
        result = WrkResult(
            duration_s=duration_s,
            requests=requests,
            throughput_rps=requests / duration_s if duration_s > 0 else 0.0,
            non_2xx=int(raw["non_2xx"]),
            socket_errors=socket_errors,
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            p99_9_ms=latency["p99_9"] / 1000,
            max_ms=latency["max"] / 1000,
            mean_ms=latency["mean"] / 1000,
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WrkOutputError(f"malformed WRK_RESULT line: {exc!r}") from exc
    match = _RPS_LINE.search(stdout)
    if match is not None and requests > 0:
        printed = float(match.group(1))
        if abs(printed - result.throughput_rps) > 0.02 * printed + 1:
            raise WrkOutputError(
                f"WRK_RESULT says {result.throughput_rps:.1f} req/s, wrk printed {printed}"
            )
    return result
