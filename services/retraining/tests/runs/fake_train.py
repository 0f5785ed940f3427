"""A stand-in for ``orchard_pipelines.retrain`` in the runner's tests (run as a script).

Its own options come first (``--mode ok|fail|hang|noresult``, ``--holdout
better|worse|first|none``, ``--artifacts DIR`` to write the holdout where a fake registry
finds it, ``--register`` to log and register a real version in MLflow), then the arguments
the runner appends. It prints progress lines and its argv on stderr, and its result as the
last line of stdout, like the real step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def holdout(kind: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=600)
    champion = np.clip(0.5 + (labels - 0.5) * 0.3 + rng.normal(0, 0.2, 600), 0, 1)
    sharp = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, 0.2, 600), 0, 1)
    arrays = {"labels": labels, "candidate": sharp if kind != "worse" else rng.random(600)}
    if kind != "first":
        arrays["champion"] = champion
    return arrays


def register(args: argparse.Namespace, npz: Path | None) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri, args.tracking_uri)
    experiment = client.get_experiment_by_name("fake-retrain")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("fake-retrain")
    run = client.create_run(exp_id, tags={"orchard.gate.task": "binary"})
    run_id = run.info.run_id
    if npz is not None:
        client.log_artifact(run_id, str(npz), artifact_path="gate")
    if not client.search_registered_models(f"name = '{args.model}'"):
        client.create_registered_model(args.model)
    tags = {"orchard.pipeline_run_id": args.pipeline_run_id}
    if args.trigger_id:
        tags["orchard.trigger_id"] = args.trigger_id
    version = client.create_model_version(
        args.model, f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
    )
    client.set_terminated(run_id)
    return str(version.version), run_id


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--mode", "--holdout", "--artifacts", "--model", "--tracking-uri"):
        parser.add_argument(name)
    for name in ("--pipeline-run-id", "--trigger-id", "--production-data", "--defect"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-rows", type=int)
    parser.add_argument("--register", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print("argv: " + " ".join(sys.argv[1:]), file=sys.stderr, flush=True)
    print("orchard-progress 0.1 loading data", file=sys.stderr, flush=True)
    kind = args.holdout or "better"
    npz: Path | None = None
    if kind != "none":
        npz = Path(tempfile.mkdtemp()) / "holdout.npz"
        np.savez(npz, **holdout(kind))  # type: ignore[arg-type]
    if args.register:
        version, run_id = register(args, npz)
    else:
        version, run_id = str(40 + int(args.pipeline_run_id)), f"fake-{args.pipeline_run_id}"
        if npz is not None and args.artifacts:
            target = Path(args.artifacts) / run_id / "gate"
            target.mkdir(parents=True, exist_ok=True)
            (target / "holdout.npz").write_bytes(npz.read_bytes())
    print("orchard-progress 0.6 training", file=sys.stderr, flush=True)
    if args.mode == "hang":
        time.sleep(600)
    if args.mode == "fail":
        print("Traceback: something broke\nValueError: boom", file=sys.stderr, flush=True)
        return 1
    print("orchard-progress 1.0 done", file=sys.stderr, flush=True)
    if args.mode != "noresult":
        result = {
            "model": args.model,
            "version": version,
            "run_id": run_id,
            "model_uri": f"models:/{args.model}/{version}",
            "metrics": {"roc_auc": 0.9},
            "champion_version": None if kind == "first" else "1",
            "holdout": {"rows": 600, "source": "synthetic"},
            "production_rows": 0,
        }
        print("training finished")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
