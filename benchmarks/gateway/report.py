"""The gateway benchmark's results as ``gateway.md`` (tables, targets) and ``gateway.png``.

``run.py`` calls :func:`write_report`; to redraw from saved results::

    .venv/bin/python benchmarks/gateway/report.py docs/benchmarks/gateway.json
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

# Run as a file: the repository root makes benchmarks.common importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common.charts import save_chart
from benchmarks.common.cli import redraw_main
from benchmarks.common.markdown import machine_section, noise_warning

__all__ = [
    "TARGETS",
    "Overhead",
    "TargetVerdict",
    "client_choice",
    "collapse",
    "events_cell",
    "overheads",
    "shared_cores_warning",
    "target_verdicts",
    "write_report",
]

DIRECT: Final = "direct"
GATEWAY: Final = "gateway"
LOGGING: Final = "gateway+logging"
TARGETS: Final = (DIRECT, GATEWAY, LOGGING)
# The targets on the 2-core machine.
MAX_ADDED_P50_MS: Final = 1.0
ADDED_P50_CONNECTIONS: Final = 1
MIN_THROUGHPUT_RATIO: Final = 0.5
THROUGHPUT_CONNECTIONS: Final = 64
MAX_LOGGING_COST: Final = 0.10
LOST: Final = ("dropped", "failed")
NOISY_OTHER_CORES: Final = 0.3
_COLOURS: Final = {DIRECT: "#1565c0", GATEWAY: "#2e7d32", LOGGING: "#81c784"}


@dataclass(frozen=True)
class Overhead:
    """What the gateway adds at one connection count, with payload logging off and on."""

    connections: int
    added_p50_ms: float
    added_p99_ms: float
    throughput_ratio: float
    logging_added_p50_ms: float | None
    logging_added_p99_ms: float | None
    logging_throughput_ratio: float | None
    logging_cost: float | None
    """Share of the gateway's throughput lost by turning payload logging on."""


@dataclass(frozen=True)
class TargetVerdict:
    """One of the issue's targets: what it asks, what was measured, and whether it holds."""

    name: str
    measured: str
    met: bool | None
    """None: not measured in this run, or not measurable (logging produced no events)."""


_MEDIANS: Final = ("throughput_rps", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "mean_ms")
_SUMS: Final = (
    "requests",
    "duration_s",
    "errors",
    "machine_busy_cpu_s",
    "wrk_cpu_s",
    "other_cpu_s",
    "events_received",
)


def collapse(rows: list[dict[str, Any]], key: str = "target") -> list[dict[str, Any]]:
    """One row per (``key``, connections), in first-seen order: repeated runs combined.

    Throughput and latency percentiles are the runs' medians; counts, durations and CPU
    seconds are summed, so CPU per second and events per request stay averages over all runs.
    """
    groups: dict[tuple[Any, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row[key], row["connections"]), []).append(row)
    combined = []
    for runs in groups.values():
        if len(runs) == 1:
            combined.append({**runs[0], "runs": 1})
            continue
        row = {**runs[0], "runs": len(runs)}
        for name in _MEDIANS:
            if name in row:
                row[name] = statistics.median(r[name] for r in runs)
        for name in _SUMS:
            if name in row:
                row[name] = sum(r.get(name, 0) for r in runs)
        for name in ("cpu_s", "event_outcomes"):
            if name in row:
                row[name] = {
                    k: sum(r.get(name, {}).get(k, 0.0) for r in runs) for k in runs[0][name]
                }
        combined.append(row)
    return combined


def _find(results: list[dict[str, Any]], target: str, connections: int) -> dict[str, Any] | None:
    return next(
        (r for r in results if r["target"] == target and r["connections"] == connections), None
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _difference(row: dict[str, Any], base: dict[str, Any], key: str) -> float | None:
    return row[key] - base[key] if row else None


def overheads(results: list[dict[str, Any]]) -> list[Overhead]:
    """The gateway's added latency and throughput ratio per connection count, in run order."""
    results = collapse(results)
    rows = []
    for connections in dict.fromkeys(r["connections"] for r in results):
        direct = _find(results, DIRECT, connections)
        gateway = _find(results, GATEWAY, connections)
        if direct is None or gateway is None:
            continue
        logging = _find(results, LOGGING, connections) or {}
        rows.append(
            Overhead(
                connections=connections,
                added_p50_ms=gateway["p50_ms"] - direct["p50_ms"],
                added_p99_ms=gateway["p99_ms"] - direct["p99_ms"],
                throughput_ratio=_ratio(gateway["throughput_rps"], direct["throughput_rps"]),
                logging_added_p50_ms=_difference(logging, direct, "p50_ms"),
                logging_added_p99_ms=_difference(logging, direct, "p99_ms"),
                logging_throughput_ratio=(
                    _ratio(logging["throughput_rps"], direct["throughput_rps"]) if logging else None
                ),
                logging_cost=(
                    1 - _ratio(logging["throughput_rps"], gateway["throughput_rps"])
                    if logging
                    else None
                ),
            )
        )
    return rows


def target_verdicts(results: list[dict[str, Any]]) -> list[TargetVerdict]:
    """The issue's three targets against this run's results."""
    results = collapse(results)
    by_connections = {o.connections: o for o in overheads(results)}
    verdicts = []
    low = by_connections.get(ADDED_P50_CONNECTIONS)
    verdicts.append(
        TargetVerdict(
            f"added p50 ≤ {MAX_ADDED_P50_MS:g} ms at {ADDED_P50_CONNECTIONS} connection",
            "not measured" if low is None else f"{low.added_p50_ms:+.2f} ms",
            None if low is None else low.added_p50_ms <= MAX_ADDED_P50_MS,
        )
    )
    high = by_connections.get(THROUGHPUT_CONNECTIONS)
    verdicts.append(
        TargetVerdict(
            f"throughput through the gateway ≥ {MIN_THROUGHPUT_RATIO:.0%} of direct at "
            f"{THROUGHPUT_CONNECTIONS} connections",
            "not measured" if high is None else f"{high.throughput_ratio:.0%} of direct",
            None if high is None else high.throughput_ratio >= MIN_THROUGHPUT_RATIO,
        )
    )
    name = (
        f"payload logging costs ≤ {MAX_LOGGING_COST:.0%} of the gateway's throughput at "
        f"{THROUGHPUT_CONNECTIONS} connections"
    )
    logged = _find(results, LOGGING, THROUGHPUT_CONNECTIONS)
    if high is None or high.logging_cost is None or logged is None:
        verdicts.append(TargetVerdict(name, "not measured", None))
    elif not logged.get("events_received"):
        verdicts.append(
            TargetVerdict(
                name,
                f"{high.logging_cost:+.0%}, but the receiver got no events: the gateway did "
                "not log payloads, so this is not the cost of logging",
                None,
            )
        )
    else:
        verdicts.append(
            TargetVerdict(name, f"{high.logging_cost:+.0%}", high.logging_cost <= MAX_LOGGING_COST)
        )
    return verdicts


def client_choice(clients: list[dict[str, Any]]) -> str | None:
    """The client with the highest throughput at the most connections measured, or None."""
    if not clients:
        return None
    clients = collapse(clients, "client")
    most = max(r["connections"] for r in clients)
    best = max((r for r in clients if r["connections"] == most), key=lambda r: r["throughput_rps"])
    return str(best["client"])


def write_report(document: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``gateway.md`` and, when matplotlib is installed, ``gateway.png``."""
    written = []
    png = out_dir / "gateway.png"
    chart = _write_chart(document, png)
    if chart:
        written.append(png)
    md = out_dir / "gateway.md"
    md.write_text(markdown(document, chart=chart))
    written.append(md)
    return written


def markdown(document: dict[str, Any], *, chart: bool = False) -> str:
    """The whole report as Markdown."""
    machine, config = document["machine"], document["config"]
    results = collapse(document["results"])
    clients = collapse(document.get("clients", []), "client")
    lines = [
        "# Gateway benchmark: the runtime direct vs through the gateway",
        "",
        "Generated by `make bench-gateway` (benchmarks/gateway/run.py) — do not edit; rerun "
        "it. A measurement on one machine, not a guarantee: compare ratios, not absolute numbers.",
        "",
        *noise_warning(machine),
        *shared_cores_warning([*results, *clients], machine["usable_cores"]),
        *machine_section(machine, config),
        *_method(config),
        "## Results",
        "",
    ]
    if chart:
        lines += ["![throughput and latency per target](gateway.png)", ""]
    if config.get("repeats", 1) > 1:
        lines += [
            f"Each row: {config['repeats']} runs, throughput and latencies their medians, "
            "CPU and events their averages.",
            "",
        ]
    lines += _results_table(results)
    lines += _overhead_table(results)
    lines += _targets(results)
    lines += _clients(clients)
    return "\n".join(lines).rstrip() + "\n"


def shared_cores_warning(rows: list[dict[str, Any]], cores: int) -> list[str]:
    """A warning naming the runs during which work outside the benchmark took CPU."""
    noisy = [
        f"{r.get('target') or r.get('client')} at {r['connections']}"
        for r in rows
        if r.get("other_cpu_s", 0.0) / (r["duration_s"] or 1.0) > NOISY_OTHER_CORES
    ]
    if not noisy:
        return []
    return [
        f"> **Shared cores:** in {len(noisy)} of {len(rows)} runs ({', '.join(noisy)}), work "
        f"outside the benchmark (or kernel time charged to no process) used more than "
        f"{NOISY_OTHER_CORES:g} of the {cores} cores (the *other CPU* column): those figures "
        "are low and their ratios uncertain. Rerun on a quiet machine for figures to quote.",
        "",
    ]


def _method(config: dict[str, Any]) -> list[str]:
    lines = [
        "## Method",
        "",
        f"- Model: **{config['model']}** (Orchard's scikit-learn demo Pipeline, trained "
        "in-process with `orchard_pipelines`, seed 42, saved once as a local MLflow model "
        "folder; no MLflow server). One row per request, the same OIP v2 JSON body to "
        f"`POST /v2/models/{config['model']}/infer` on every target.",
        "- Processes, all started at once, one each, on loopback:",
    ]
    for name, server in config["servers"].items():
        lines.append(f"  - `{name}`: {server['description']}")
    lines += [
        "- Targets: **direct** = wrk → runtime; **gateway** = wrk → gateway → runtime (the "
        "gateway pins the version the runtime serves and relays the caller's bytes); "
        "**gateway+logging** = the same through a second gateway with "
        "`ORCHARD_GATEWAY_EVALUATION_URL` set to the stand-in evaluation receiver. The "
        "*events* column is what the receiver got for the measured run, as a share of the "
        "requests wrk counted (wrk's last in-flight requests can take it a little over 100 %), "
        "and the events the gateway reports dropped or failed "
        "(`orchard_gateway_events_total`); 0 means the gateway logged nothing.",
        "- Before timing, the gateway's answer was checked identical to the runtime's.",
        f"- Load: `wrk --latency -t min(2, c) -c c -d {config['duration_s']:g}s --timeout 10s` "
        f"with `benchmarks/common/wrk_post.lua`, c in {config['connections']}; closed loop, "
        "keep-alive.",
        f"- Order: per connection count, {', '.join(TARGETS)} in turn"
        + (
            f" ({config['repeats']} times, the order rotated each time)"
            if config.get("repeats", 1) > 1
            else ""
        )
        + ", so that drift in the "
        f"machine's load hits all three; {config['initial_warmup_s']:g} s of warm-up per target "
        f"at start and {config['warmup_s']:g} s before each measurement. Between runs the "
        "benchmark waits until every process on the request's path has drained what wrk left "
        "queued.",
        "- Cores: nothing is pinned. wrk, the gateway, the runtime (and the receiver) share "
        "all the machine's cores, so the gateway's CPU is taken from the runtime's: on a "
        "2-core machine the throughput ratio is mostly the gateway's CPU cost per request. "
        "CPU columns: each process's user+system time during the run divided by its duration "
        "(1.0 = one core busy); machine CPU is the whole machine's (/proc/stat), and *other "
        "CPU* is what of it went to neither wrk nor the processes on the request's path: "
        "other work sharing the cores (noise), plus kernel time charged to no process.",
        "",
    ]
    return lines


def _cores(row: dict[str, Any], name: str) -> str:
    seconds = row["duration_s"] or 1.0
    value = row.get("cpu_s", {}).get(name)
    return "-" if value is None else f"{value / seconds:.2f}"


def _results_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| connections | target | throughput (req/s) | p50 (ms) | p99 (ms) | errors "
        "| gateway CPU | runtime CPU | other CPU | machine CPU | events |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        gateway_cpu = _cores(r, r["target"]) if r["target"] != DIRECT else "-"
        seconds = r["duration_s"] or 1.0
        events = "-" if r["target"] == DIRECT else events_cell(r)
        p50, p99 = (f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}") if r["requests"] else ("-", "-")
        lines.append(
            f"| {r['connections']} | {r['target']} | {r['throughput_rps']:,.0f} | {p50} | {p99} "
            f"| {r['errors']} | {gateway_cpu} | {_cores(r, 'runtime')} "
            f"| {r.get('other_cpu_s', 0.0) / seconds:.2f} "
            f"| {r['machine_busy_cpu_s'] / seconds:.2f} | {events} |"
        )
    return [*lines, ""]


def events_cell(row: dict[str, Any]) -> str:
    """Events received (share of requests), and those the gateway dropped or failed to send."""
    received = row.get("events_received", 0)
    cell = f"{received:,}"
    if received and row["requests"]:
        cell += f" ({received / row['requests']:.0%})"
    lost = {k: v for k, v in row.get("event_outcomes", {}).items() if k in LOST and v}
    if lost:
        cell += "; " + ", ".join(f"{k} {v:,.0f}" for k, v in lost.items())
    return cell


def _signed(value: float | None, unit: str = " ms") -> str:
    return "-" if value is None else f"{value:+.2f}{unit}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _overhead_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "What the gateway adds (gateway minus direct; throughput as a share of direct; logging "
        "cost = throughput lost turning payload logging on, gateway+logging vs gateway):",
        "",
        "| connections | added p50 | added p99 | throughput vs direct "
        "| +logging: added p50 | +logging: added p99 | +logging: throughput vs direct "
        "| logging cost |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in overheads(results):
        lines.append(
            f"| {o.connections} | {_signed(o.added_p50_ms)} | {_signed(o.added_p99_ms)} "
            f"| {_percent(o.throughput_ratio)} | {_signed(o.logging_added_p50_ms)} "
            f"| {_signed(o.logging_added_p99_ms)} | {_percent(o.logging_throughput_ratio)} "
            f"| {_percent(o.logging_cost)} |"
        )
    return [*lines, ""]


def _targets(results: list[dict[str, Any]]) -> list[str]:
    lines = ["## Targets", ""]
    words = {True: "**Met**", False: "**Missed**", None: "**Not shown**"}
    for verdict in target_verdicts(results):
        lines.append(f"- {words[verdict.met]}: {verdict.name} — measured {verdict.measured}.")
    return [*lines, ""]


def _clients(clients: list[dict[str, Any]]) -> list[str]:
    if not clients:
        return []
    lines = [
        "## Upstream client",
        "",
        "A minimal proxy hop (`benchmarks/gateway/proxy_hop.py`: Starlette on uvicorn with "
        "uvloop and httptools, like the gateway; a pool of 100 connections all kept alive) "
        "built on each client, forwarding to the same runtime under the same wrk load, the "
        "hops in turn at each connection count. The gateway itself uses aiohttp.",
        "",
        "| connections | client | throughput (req/s) | p50 (ms) | p99 (ms) | errors | hop CPU "
        "| runtime CPU | other CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in clients:
        lines.append(
            f"| {r['connections']} | {r['client']} | {r['throughput_rps']:,.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} "
            f"| {_cores(r, 'hop-' + r['client'])} | {_cores(r, 'runtime')} "
            f"| {r.get('other_cpu_s', 0.0) / (r['duration_s'] or 1.0):.2f} |"
        )
    best = client_choice(clients)
    most = max(r["connections"] for r in clients)
    lines += ["", f"Highest throughput at {most} connections: **{best}**.", ""]
    return lines


def _write_chart(document: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = collapse(document["results"])
    connections = document["config"]["connections"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    panels = (
        ("throughput_rps", "throughput (req/s)", False),
        ("p50_ms", "p50 latency (ms, log)", True),
        ("p99_ms", "p99 latency (ms, log)", True),
    )
    width = 0.8 / len(TARGETS)
    for ax, (metric, title, log) in zip(axes, panels, strict=True):
        for i, target in enumerate(TARGETS):
            offsets = [j + (i - 1) * width for j in range(len(connections))]
            values = [(r[metric] if (r := _find(results, target, c)) else 0.0) for c in connections]
            ax.bar(offsets, values, width, label=target, color=_COLOURS[target])
        ax.set_xticks(range(len(connections)), [f"{c} conn." for c in connections])
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    save_chart(figure, path, "Runtime direct vs through the gateway", document["machine"], dpi=100)
    return True


def main() -> None:
    redraw_main("gateway.json", write_report)


if __name__ == "__main__":
    main()
