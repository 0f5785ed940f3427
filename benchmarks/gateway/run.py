"""The runtime called directly and through the gateway, under the same wrk load, in one run.

Run from the repository root (``make bench-gateway``)::

    .venv/bin/python benchmarks/gateway/run.py [--duration 10] [--connections 1,16,64]

Starts, each on a free loopback port: the inference runtime serving credit-risk from a local
MLflow model folder (no MLflow server), a stand-in evaluation service that counts prediction
events (``receiver.py``), the gateway with payload logging off and a second one with it on
(posting to the receiver), and, unless ``--no-clients``, one minimal proxy hop per upstream
client (``clients.py``). Checks that the gateway answers what the runtime answers, then for
each connection count runs wrk against direct, gateway and gateway+logging in turn, so that
drift in the machine's load hits all three. Writes ``gateway.json`` (raw), ``gateway.md`` and
``gateway.png``. This measures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

# Run as a file: the repository root makes benchmarks.* importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common.bench_models import prepare_models, write_payloads
from benchmarks.common.cli import add_folder_options, add_load_options, run_timed
from benchmarks.common.host import git_revision, machine_facts, wait_for_quiet
from benchmarks.common.measure import measure
from benchmarks.common.servers import RunningServer, ServerSpec, free_port
from benchmarks.common.wrk import find_wrk, run_wrk, wrk_threads, wrk_version
from benchmarks.gateway.clients import CLIENT_CONNECTIONS, compare_clients, hop_specs
from benchmarks.gateway.report import TARGETS, write_report

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parents[1]
MODEL: Final = "credit-risk"
# A model served from a local folder is version "1" in the runtime; the gateway pins it.
MODEL_VERSION: Final = "1"
INFER_PATH: Final = f"/v2/models/{MODEL}/infer"
# The gateway's default events_flush_interval_s: the longest its last batch waits.
EVENTS_FLUSH_S: Final = 1.0
_PACKAGES: Final = ("fastapi", "uvicorn", "aiohttp", "httpx", "httpx-aiohttp", "scikit-learn")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load_at_start = list(os.getloadavg())
    revision = git_revision(ROOT)
    wrk = find_wrk()
    if wrk is None:
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    work_dir: Path = args.work_dir.resolve()
    gateway_dir = work_dir / "gateway"
    gateway_dir.mkdir(parents=True, exist_ok=True)
    print(f"== preparing models in {work_dir / 'models'}", flush=True)
    model_dir = prepare_models(work_dir / "models")[MODEL]
    body = write_payloads(work_dir)[MODEL]
    other_load = wait_for_quiet(args.quiet_wait)

    with contextlib.ExitStack() as stack:

        def start(spec: ServerSpec) -> RunningServer:
            server = RunningServer(spec, free_port(), gateway_dir / "logs" / f"{spec.name}.log")
            return stack.enter_context(server)

        runtime = start(runtime_spec(model_dir))
        receiver = start(receiver_spec())
        routes = write_routes_file(gateway_dir / "routes.yaml", runtime.base_url)
        gateway = start(gateway_spec("gateway", routes, gateway_dir, evaluation_url=None))
        logging_on = start(gateway_spec("gateway+logging", routes, gateway_dir, receiver.base_url))
        hops = [start(spec) for spec in hop_specs(runtime.base_url)] if args.clients else []
        for server in (runtime, gateway, logging_on, *hops):
            server.wait_ready([MODEL])
        receiver.wait_ready([])
        print(f"== runtime on {runtime.port}, gateways on {gateway.port}, {logging_on.port}")
        verification = verify_same_answers(runtime, [gateway, logging_on, *hops], body)
        print("== the gateway answers what the runtime answers", flush=True)

        paths = {
            "direct": [runtime],
            "gateway": [gateway, runtime],
            "gateway+logging": [logging_on, runtime, receiver],
        }
        for processes in paths.values():
            run_wrk(wrk, processes[0].base_url + INFER_PATH, body, 16, args.initial_warmup)
            for process in processes:
                process.wait_idle()
        results = []
        for connections in args.connections:
            for order in run_order(args.repeats):
                for target in order:
                    results.append(
                        _measure_target(
                            wrk, target, paths[target], receiver, body, connections, args
                        )
                    )
        client_results = (
            compare_clients(wrk, hops, runtime, body, args, path=INFER_PATH) if hops else []
        )

    document = {
        "machine": {
            **machine_facts(_PACKAGES),
            "load_average_at_start": load_at_start,
            "busy_cores_before_start": round(other_load, 2),
        },
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "initial_warmup_s": args.initial_warmup,
            "repeats": args.repeats,
            "connections": list(args.connections),
            "client_connections": list(CLIENT_CONNECTIONS) if hops else [],
            "model": MODEL,
            "wrk": wrk_version(wrk),
            "git": revision,
            "servers": {
                s.spec.name: {"description": s.spec.description, "env": _shown_env(s.spec)}
                for s in (runtime, gateway, logging_on, receiver, *hops)
            },
        },
        "verification": verification,
        "results": results,
        "clients": client_results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "gateway.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    written = write_report(document, args.out_dir)
    print(f"== wrote {json_path}, " + ", ".join(str(p) for p in written))
    return 0


def run_order(repeats: int) -> list[tuple[str, ...]]:
    """The targets' order in each repeat at one connection count: rotated, so none is always
    measured first or last."""
    return [TARGETS[i % len(TARGETS) :] + TARGETS[: i % len(TARGETS)] for i in range(repeats)]


def runtime_spec(model_dir: Path) -> ServerSpec:
    """The inference runtime serving credit-risk from its folder, at its defaults."""
    return ServerSpec(
        name="runtime",
        description=(
            "python -m orchard_inference at its defaults (adaptive batching on), credit-risk "
            "from a local MLflow model folder"
        ),
        command=(sys.executable, "-m", "orchard_inference"),
        env={
            "ORCHARD_INFERENCE_MODELS": json.dumps({MODEL: str(model_dir)}),
            "ORCHARD_INFERENCE_PORT": "{port}",
            "ORCHARD_INFERENCE_LOG_LEVEL": "WARNING",
        },
    )


def receiver_spec() -> ServerSpec:
    """The stand-in evaluation service that counts the events it is sent."""
    return ServerSpec(
        name="receiver",
        description="stand-in evaluation: aiohttp, POST /v1/events answered 202 and counted",
        command=(sys.executable, str(HERE / "receiver.py"), "--port", "{port}"),
    )


def gateway_spec(
    name: str, routes_file: Path, work_dir: Path, evaluation_url: str | None
) -> ServerSpec:
    """The gateway at its defaults, logging at WARNING; payload logging on with a URL."""
    env = {
        "ORCHARD_GATEWAY_PORT": "{port}",
        "ORCHARD_GATEWAY_ROUTES_FILE": str(routes_file),
        "ORCHARD_GATEWAY_LOG_LEVEL": "WARNING",
        "ORCHARD_GATEWAY_ACCESS_LOG": "false",
        "ORCHARD_GATEWAY_JOBS_DIR": str(work_dir / "jobs" / name),
    }
    if evaluation_url is not None:
        env["ORCHARD_GATEWAY_EVALUATION_URL"] = evaluation_url
    described = "payload logging on (to the receiver)" if evaluation_url else "payload logging off"
    return ServerSpec(
        name=name,
        description=f"python -m orchard_gateway, {described}",
        command=(sys.executable, "-m", "orchard_gateway"),
        env=env,
    )


def write_routes_file(path: Path, backend: str) -> Path:
    """The gateway's route table: credit-risk to ``backend`` at the version it serves."""
    path.write_text(f'models:\n  {MODEL}: {{backend: "{backend}", version: "{MODEL_VERSION}"}}\n')
    return path


def verify_same_answers(
    reference: RunningServer, proxies: list[RunningServer], body: Path
) -> dict[str, Any]:
    """Ask each server once; fail unless every proxy returns the runtime's outputs."""
    data = body.read_bytes()
    expected = reference.infer(MODEL, data)["outputs"]
    for proxy in proxies:
        outputs = proxy.infer(MODEL, data)["outputs"]
        if outputs != expected:
            raise RuntimeError(f"{proxy.spec.name} answers {outputs}, the runtime {expected}")
    return {"identical": True, "outputs": expected}


def _measure_target(
    wrk: str,
    target: str,
    processes: list[RunningServer],
    receiver: RunningServer,
    body: Path,
    connections: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    url = processes[0].base_url + INFER_PATH
    logging_on = target == "gateway+logging"
    # The warm-up runs here, not in measure(), so that its events are counted before the run.
    if args.warmup > 0:
        run_wrk(wrk, url, body, connections, args.warmup)
    _drain(processes, logging_on)
    events_before, sink_before = receiver_count(receiver), event_outcomes(processes[0])
    done = measure(
        wrk,
        url,
        body,
        connections,
        duration_s=args.duration,
        warmup_s=0,
        processes=processes,
    )
    _drain(processes, logging_on)
    events_after, sink_after = receiver_count(receiver), event_outcomes(processes[0])
    run = done.run
    seconds = run.duration_s or 1.0
    cpu = {name: round(value, 3) for name, value in done.cpu_s.items()}
    print(
        f"{target:16} c={connections:<3} {run.throughput_rps:8.1f} req/s  "
        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  errors {run.errors}  "
        + "  ".join(f"{name} {value / seconds:4.2f}" for name, value in cpu.items())
        + f"  machine {done.machine_busy_cpu_s / seconds:4.2f} cores"
        + (f"  events {events_after - events_before}" if logging_on else ""),
        flush=True,
    )
    return {
        "target": target,
        "connections": connections,
        "threads": wrk_threads(connections),
        **run.to_dict(),
        "cpu_s": cpu,
        "machine_busy_cpu_s": round(done.machine_busy_cpu_s, 3),
        "wrk_cpu_s": round(done.wrk_cpu_s, 3),
        "other_cpu_s": round(done.other_cpu_s, 3),
        # Events of the measured run's requests (and of those wrk left in flight at its end).
        "events_received": events_after - events_before,
        "event_outcomes": {
            k: sink_after[k] - sink_before.get(k, 0.0) for k in sink_after if k in sink_before
        },
    }


def _drain(processes: list[RunningServer], logging_on: bool) -> None:
    for process in processes:
        process.wait_idle()
    if logging_on:
        time.sleep(EVENTS_FLUSH_S + 0.5)  # the sink's last batch waits one flush interval


def receiver_count(receiver: RunningServer) -> int:
    """Events the receiver has been sent so far."""
    with urllib.request.urlopen(receiver.base_url + "/count", timeout=5) as answer:  # noqa: S310
        count: int = json.loads(answer.read())["events"]
        return count


def event_outcomes(gateway: RunningServer) -> dict[str, float]:
    """The gateway's ``orchard_gateway_events_total`` by outcome; empty if it has none."""
    try:
        with urllib.request.urlopen(gateway.base_url + "/metrics", timeout=5) as answer:  # noqa: S310
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    return parse_event_outcomes(text)


def parse_event_outcomes(text: str) -> dict[str, float]:
    """``{outcome: count}`` from Prometheus text holding ``orchard_gateway_events_total``."""
    from prometheus_client.parser import text_string_to_metric_families

    outcomes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "orchard_gateway_events":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and "outcome" in sample.labels:
                outcomes[sample.labels["outcome"]] = sample.value
    return outcomes


def _shown_env(spec: ServerSpec) -> dict[str, str]:
    return {k: v for k, v in spec.env.items() if k != "ORCHARD_INFERENCE_MODELS"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_load_options(parser, initial_warmup_help="seconds per target at start")
    parser.add_argument(
        "--repeats",
        type=int,
        default=int(os.environ.get("BENCH_REPEATS") or 1),
        help="runs per target and connection count, reported as medians (default: "
        "$BENCH_REPEATS, else 1)",
    )
    parser.add_argument(
        "--no-clients",
        dest="clients",
        action="store_false",
        help="skip the upstream-client comparison (clients.py)",
    )
    add_folder_options(parser, ROOT)
    return parser


if __name__ == "__main__":
    run_timed(main)
