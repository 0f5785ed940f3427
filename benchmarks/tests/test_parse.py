"""wrk's output as printed with wrk_post.lua, parsed into a WrkResult."""

from __future__ import annotations

import pytest
from benchmarks.common.wrk_output import WrkOutputError, parse_wrk_output

WRK_STDOUT = """\
Running 10s test @ http://127.0.0.1:8080/v2/models/credit-risk/infer
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   210.79ms  132.37ms   1.83s    95.12%
    Req/Sec   110.12     40.31   200.00     70.00%
  Latency Distribution
     50%  197.25ms
     75%  210.00ms
     90%  233.25ms
     99%  945.49ms
  1096 requests in 5.02s, 499.84KB read
  Non-2xx or 3xx responses: 3
Requests/sec:    218.42
Transfer/sec:     99.61KB
WRK_RESULT {"duration_us": 5017852, "requests": 1096, "bytes": 511832, "non_2xx": 5, \
"errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2}, "latency_us": \
{"min": 8964, "mean": 210788.12, "stdev": 132367.34, "max": 1830994, "p50": 197252, \
"p90": 233246, "p99": 945493, "p99_9": 1635557}}
"""


def test_parses_counts_throughput_and_percentiles() -> None:
    result = parse_wrk_output(WRK_STDOUT)

    assert result.requests == 1096
    assert result.throughput_rps == pytest.approx(218.42, abs=0.01)
    assert result.p50_ms == pytest.approx(197.252)
    assert result.p99_ms == pytest.approx(945.493)
    assert result.max_ms == pytest.approx(1830.994)


def test_errors_are_non_2xx_plus_socket_errors_without_double_counting_status() -> None:
    result = parse_wrk_output(WRK_STDOUT)

    # wrk's "status" count (answers >= 400) is already part of the Lua hook's non-2xx count.
    assert (result.non_2xx, result.socket_errors, result.errors) == (5, 3, 8)


def test_output_without_the_lua_line_is_rejected() -> None:
    plain = WRK_STDOUT.split("WRK_RESULT")[0]

    with pytest.raises(WrkOutputError, match=r"wrk_post\.lua"):
        parse_wrk_output(plain)


def test_a_line_from_another_run_is_rejected() -> None:
    mismatched = WRK_STDOUT.replace("Requests/sec:    218.42", "Requests/sec:    500.00")

    with pytest.raises(WrkOutputError, match="500"):
        parse_wrk_output(mismatched)
