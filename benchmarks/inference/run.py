"""Orchard's inference runtime against ``kserve.ModelServer``, side by side, under wrk.

Run from the repository root (``make bench-inference``)::

    .venv/bin/python benchmarks/inference/run.py [--duration 10] [--connections 1,16,64]

Steps: train and save the two demo models into the work directory (once), start every server
at the same time on its own port, check that all of them give the same answers, then for each
model and connection count run wrk against each server in turn, so that any drift in the
machine's load hits all servers alike. Writes ``inference.json`` (raw results),
``inference.md`` and ``inference.png`` into the output directory. This measures; it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

# Run as a file: the repository root makes benchmarks.common importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
from benchmarks.common.bench_models import MODEL_NAMES, prepare_models, write_payloads
from benchmarks.common.cli import add_folder_options, add_load_options, run_timed
from benchmarks.common.host import command_output, git_revision, machine_facts, wait_for_quiet
from benchmarks.common.measure import measure
from benchmarks.common.servers import RunningServer, ServerSpec, free_port
from benchmarks.common.wrk import find_wrk, run_wrk, wrk_threads, wrk_version
from benchmarks.common.wrk_output import WrkResult
from report import write_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVER_NAMES = ("orchard", "kserve", "orchard-no-batching")
_PACKAGES = ("kserve", "torch", "scikit-learn", "mlflow", "fastapi", "uvicorn", "numpy")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load_at_start = list(os.getloadavg())
    revision = git_revision(ROOT)  # before the servers start: the code they run
    unknown = set(args.servers) - set(SERVER_NAMES) or set(args.models) - set(MODEL_NAMES)
    if unknown:
        print(f"error: unknown server or model {sorted(unknown)}", file=sys.stderr)
        return 2
    wrk = find_wrk()
    if wrk is None:
        print(
            "error: wrk is not installed (apt-get install wrk, brew install wrk)", file=sys.stderr
        )
        return 2
    work_dir: Path = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"== preparing models in {work_dir / 'models'}", flush=True)
    model_dirs = prepare_models(work_dir / "models")
    bodies = write_payloads(work_dir)
    specs = [_server_spec(name, model_dirs, dict(args.orchard_env)) for name in args.servers]
    other_load = wait_for_quiet(args.quiet_wait)

    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        servers = []
        for spec in specs:  # started together: start-up is the slow part, idle costs nothing
            port = free_port()
            server = RunningServer(spec, port, work_dir / "logs" / f"{spec.name}.log")
            stack.enter_context(server)
            servers.append(server)
        for server in servers:
            server.wait_ready(list(args.models))
            print(f"== {server.spec.name} ready on port {server.port}", flush=True)
        verification = _verify_same_answers(servers, list(args.models), bodies)
        print("== answers identical across servers", flush=True)
        for model in args.models:
            for server in servers:
                _wrk(wrk, server, model, bodies[model], 16, args.initial_warmup)
                server.wait_idle()
        for model in args.models:
            for connections in args.connections:
                for server in servers:
                    results.append(_measure(wrk, server, model, bodies[model], connections, args))

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
            "connections": list(args.connections),
            "models": list(args.models),
            "servers": {spec.name: _describe(spec) for spec in specs},
            "wrk": wrk_version(wrk),
            "orchard_batching_in_runtime": _runtime_has_batching(),
            "git": revision,
        },
        "verification": verification,
        "results": results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "inference.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    written = write_report(document, args.out_dir)
    print(f"== wrote {json_path}, " + ", ".join(str(p) for p in written))
    return 0


def _measure(
    wrk: str,
    server: RunningServer,
    model: str,
    body: Path,
    connections: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One measurement: warm-up, drain, the timed wrk run, drain; its row of results."""
    done = measure(
        wrk,
        f"{server.base_url}/v2/models/{model}/infer",
        body,
        connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
        processes=[server],  # its backlog must not run into the next server's turn
    )
    run, server_cpu = done.run, done.cpu_s[server.spec.name]
    machine_cpu = done.machine_busy_cpu_s
    print(
        f"{model:12} {server.spec.name:20} c={connections:<3} "
        f"{run.throughput_rps:9.1f} req/s  p50 {run.p50_ms:8.2f} ms  "
        f"p99 {run.p99_ms:8.2f} ms  errors {run.errors}  "
        f"server CPU {server_cpu / run.duration_s:4.2f} cores, "
        f"machine {machine_cpu / run.duration_s:4.2f}",
        flush=True,
    )
    return {
        "model": model,
        "server": server.spec.name,
        "connections": connections,
        "threads": wrk_threads(connections),
        **run.to_dict(),
        "server_cpu_s": round(server_cpu, 3),
        "machine_busy_cpu_s": round(machine_cpu, 3),
    }


def _server_spec(name: str, model_dirs: dict[str, Path], extra_env: dict[str, str]) -> ServerSpec:
    python = sys.executable
    if name == "kserve":
        return ServerSpec(
            name="kserve",
            description=(
                "kserve.ModelServer, 1 worker, one kserve.Model subclass per model "
                "(gRPC, access log and latency log off)"
            ),
            command=(
                python,
                str(HERE / "kserve_baseline.py"),
                "--port",
                "{port}",
                "--credit-risk",
                str(model_dirs["credit-risk"]),
                "--digits",
                str(model_dirs["digits"]),
            ),
        )
    batching = name == "orchard"
    return ServerSpec(
        name=name,
        description=(
            f"python -m orchard_inference, ORCHARD_INFERENCE_BATCH_ENABLED={str(batching).lower()}"
            + "".join(f", {k}={v}" for k, v in extra_env.items())
        ),
        command=(python, "-m", "orchard_inference"),
        env={
            "ORCHARD_INFERENCE_MODELS": json.dumps({m: str(p) for m, p in model_dirs.items()}),
            "ORCHARD_INFERENCE_PORT": "{port}",
            "ORCHARD_INFERENCE_LOG_LEVEL": "WARNING",
            "ORCHARD_INFERENCE_BATCH_ENABLED": str(batching).lower(),
            **extra_env,
        },
    )


def _describe(spec: ServerSpec) -> dict[str, Any]:
    env = {k: v for k, v in spec.env.items() if k != "ORCHARD_INFERENCE_MODELS"}
    return {"description": spec.description, "env": env}


def _wrk(
    wrk: str, server: RunningServer, model: str, body: Path, connections: int, duration: float
) -> WrkResult:
    return run_wrk(wrk, f"{server.base_url}/v2/models/{model}/infer", body, connections, duration)


def _verify_same_answers(
    servers: list[RunningServer], models: list[str], bodies: dict[str, Path]
) -> dict[str, Any]:
    """Ask every server once per model; fail unless all outputs match the first server's."""
    report: dict[str, Any] = {}
    for model in models:
        body = bodies[model].read_bytes()
        answers = {s.spec.name: _outputs(s.infer(model, body)) for s in servers}
        reference_name, reference = next(iter(answers.items()))
        for name, outputs in answers.items():
            if outputs.keys() != reference.keys():
                raise RuntimeError(
                    f"{model}: {name} returns outputs {sorted(outputs)}, "
                    f"{reference_name} returns {sorted(reference)}"
                )
            for output, (datatype, array) in outputs.items():
                ref_datatype, ref_array = reference[output]
                if datatype != ref_datatype or array.shape != ref_array.shape:
                    raise RuntimeError(
                        f"{model}/{output}: {name} gives {datatype}{list(array.shape)}, "
                        f"{reference_name} gives {ref_datatype}{list(ref_array.shape)}"
                    )
                if not np.array_equal(array, ref_array):
                    raise RuntimeError(
                        f"{model}/{output}: {name} answers {array.tolist()}, "
                        f"{reference_name} answers {ref_array.tolist()}"
                    )
        report[model] = {
            "identical": True,
            "outputs": {
                name: [datatype, list(array.shape), array.reshape(-1).tolist()]
                for name, (datatype, array) in reference.items()
            },
        }
    return report


def _outputs(answer: dict[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
    dtypes = {"INT64": np.int64, "FP64": np.float64, "FP32": np.float32}
    outputs = {}
    for output in answer["outputs"]:
        dtype = dtypes.get(output["datatype"], object)
        array = np.asarray(output["data"], dtype=dtype).reshape(output["shape"])
        outputs[output["name"]] = (output["datatype"], array)
    return outputs


def _runtime_has_batching() -> bool:
    code = (
        "from orchard_inference.settings import InferenceSettings as S;"
        "print(any(n.startswith('batch') for n in S.model_fields))"
    )
    return command_output([sys.executable, "-c", code]).strip() == "True"


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, initial_warmup_help="seconds per server and model at start")
    parser.add_argument(
        "--models", type=lambda s: s.split(","), default=list(MODEL_NAMES), help="comma-separated"
    )
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVER_NAMES),
        help=f"comma-separated, from {', '.join(SERVER_NAMES)}",
    )
    parser.add_argument(
        "--orchard-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Orchard servers, to try a setting (repeatable)",
    )
    add_folder_options(parser, ROOT)
    return parser


if __name__ == "__main__":
    run_timed(main)
