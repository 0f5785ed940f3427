"""The gateway benchmark's report: added latency, throughput ratios, targets and tables."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.gateway.report import (
    client_choice,
    collapse,
    events_cell,
    markdown,
    overheads,
    shared_cores_warning,
    target_verdicts,
)


def _row(target: str, connections: int, rps: float, p50: float, p99: float, **extra: Any) -> dict:
    return {
        "target": target,
        "connections": connections,
        "duration_s": 10.0,
        "requests": int(rps * 10),
        "throughput_rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": 0,
        "cpu_s": {target: 5.0, "runtime": 9.0},
        "machine_busy_cpu_s": 19.0,
        "other_cpu_s": 1.0,
        **extra,
    }


def _results(*, events: int = 9_000, logged_rps: float = 900.0) -> list[dict[str, Any]]:
    return [
        _row("direct", 1, 200.0, 4.0, 6.0),
        _row("gateway", 1, 180.0, 4.8, 7.5, events_received=0),
        _row("gateway+logging", 1, 175.0, 5.0, 8.0, events_received=1_750),
        _row("direct", 64, 1_600.0, 40.0, 90.0),
        _row("gateway", 64, 1_000.0, 64.0, 130.0, events_received=0),
        _row("gateway+logging", 64, logged_rps, 70.0, 150.0, events_received=events),
    ]


def test_overheads_are_gateway_minus_direct_and_ratios_of_throughput() -> None:
    low, high = overheads(_results())

    assert low.connections == 1
    assert low.added_p50_ms == pytest.approx(0.8)
    assert low.added_p99_ms == pytest.approx(1.5)
    assert high.throughput_ratio == pytest.approx(1_000 / 1_600)
    assert high.logging_added_p99_ms == pytest.approx(60.0)
    assert high.logging_throughput_ratio == pytest.approx(900 / 1_600)
    assert high.logging_cost == pytest.approx(0.1)


def test_overheads_without_a_logging_run_leave_its_columns_empty() -> None:
    results = [r for r in _results() if r["target"] != "gateway+logging"]

    (low, _) = overheads(results)

    assert (low.logging_added_p50_ms, low.logging_cost) == (None, None)


def test_targets_met_when_within_the_issue_limits() -> None:
    verdicts = target_verdicts(_results())

    assert [v.met for v in verdicts] == [True, True, True]
    assert verdicts[0].measured == "+0.80 ms"
    assert verdicts[1].measured == "62% of direct"


def test_targets_missed_when_logging_costs_more_than_ten_percent() -> None:
    verdicts = target_verdicts(_results(logged_rps=850.0))

    assert verdicts[2].met is False
    assert verdicts[2].measured == "+15%"


def test_logging_target_is_not_judged_when_the_receiver_got_no_events() -> None:
    (*_, logging) = target_verdicts(_results(events=0))

    assert logging.met is None
    assert "no events" in logging.measured


def test_targets_not_measured_when_their_connection_counts_were_not_run() -> None:
    results = [r for r in _results() if r["connections"] == 64]

    verdicts = target_verdicts(results)

    assert verdicts[0].met is None
    assert verdicts[0].measured == "not measured"


def test_events_cell_shows_share_of_requests_and_lost_events() -> None:
    row = _row(
        "gateway+logging",
        64,
        100.0,
        1.0,
        2.0,
        events_received=900,
        event_outcomes={"sent": 900.0, "dropped": 100.0, "failed": 0.0},
    )

    assert events_cell(row) == "900 (90%); dropped 100"


def test_client_choice_is_the_fastest_at_the_most_connections() -> None:
    clients = [
        {"client": "aiohttp", "connections": 16, "throughput_rps": 500.0},
        {"client": "httpx", "connections": 16, "throughput_rps": 600.0},
        {"client": "aiohttp", "connections": 64, "throughput_rps": 700.0},
        {"client": "httpx", "connections": 64, "throughput_rps": 300.0},
    ]

    assert client_choice(clients) == "aiohttp"
    assert client_choice([]) is None


def test_markdown_has_the_tables_targets_and_machine_facts() -> None:
    document = {
        "machine": {
            "date_utc": "2026-11-27 02:00 UTC",
            "cpu_model": "AMD EPYC",
            "cores": 2,
            "usable_cores": 2,
            "memory_gib": 23.5,
            "kernel": "6.1",
            "python": "3.11.7",
            "versions": {"aiohttp": "3.14"},
            "load_average_at_start": [0.1, 0.2, 0.3],
            "load_average_at_end": [0.4, 0.5, 0.6],
            "busy_cores_before_start": 0.0,
        },
        "config": {
            "git": "abc1234",
            "wrk": ["wrk 4.1.0"],
            "model": "credit-risk",
            "duration_s": 10.0,
            "warmup_s": 1.0,
            "initial_warmup_s": 3.0,
            "connections": [1, 64],
            "servers": {"runtime": {"description": "python -m orchard_inference"}},
        },
        "results": _results(),
        "clients": [
            _row("x", 64, 700.0, 50.0, 80.0, client="aiohttp"),
            _row("x", 64, 300.0, 90.0, 400.0, client="httpx"),
        ],
    }

    text = markdown(document)

    assert "| 64 | gateway+logging | 900 | 70.00 | 150.00 | 0 | 0.50 | 0.90 | 0.10 | 1.90 |" in text
    assert "| 1 | +0.80 ms | +1.50 ms | 90% |" in text
    assert "**Met**: added p50 ≤ 1 ms at 1 connection" in text
    assert "Highest throughput at 64 connections: **aiohttp**" in text
    assert "2 usable cores" in text
    assert "Python 3.11.7" in text


def test_repeated_runs_collapse_to_medians_and_summed_counts() -> None:
    runs = [
        _row("gateway", 64, 900.0, 60.0, 100.0, events_received=9_000),
        _row("gateway", 64, 1_000.0, 70.0, 300.0, events_received=10_000),
        _row("gateway", 64, 1_300.0, 65.0, 200.0, events_received=13_000),
    ]

    (row,) = collapse(runs)

    assert (row["runs"], row["throughput_rps"], row["p50_ms"], row["p99_ms"]) == (
        3,
        1_000.0,
        65.0,
        200.0,
    )
    assert row["requests"] == 32_000
    assert row["events_received"] == 32_000
    assert row["cpu_s"] == {"gateway": 15.0, "runtime": 27.0}


def test_overheads_compare_the_medians_of_repeated_runs() -> None:
    results = [
        *_results(),
        _row("direct", 64, 2_000.0, 40.0, 90.0),
        _row("direct", 64, 1_200.0, 40.0, 90.0),
    ]

    (_, high) = overheads(results)

    assert high.throughput_ratio == pytest.approx(1_000 / 1_600)


def test_shared_cores_are_flagged_only_when_other_work_took_cpu() -> None:
    quiet = [_row("direct", 1, 200.0, 4.0, 6.0)]  # 1.0 CPU second in 10 s
    busy = [_row("direct", 1, 200.0, 4.0, 6.0, other_cpu_s=8.0)]

    assert shared_cores_warning(quiet, cores=2) == []
    assert "in 1 of 2 runs (direct at 1)" in shared_cores_warning([*quiet, *busy], cores=2)[0]
