"""The local platform: which processes ``orchard up`` runs, with which flags and variables.

Services are launched, never imported (``python -m <package>``), so this module only knows
their command lines, their environment variables and their readiness endpoints.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from orchard_cli.supervisor import ProcessSpec

__all__ = [
    "CHAMPION",
    "DEMO_MODELS",
    "LOCAL_TIMESCALES",
    "PlatformConfig",
    "PlatformError",
    "TrainedModel",
    "champion_versions",
    "evaluation_spec",
    "example_curl",
    "gateway_spec",
    "inference_spec",
    "missing_modules",
    "mlflow_spec",
    "parse_training_output",
    "retraining_spec",
    "training_spec",
]

DEMO_MODELS = ("credit-risk", "digits")
CHAMPION = "champion"

# module run with `python -m` → the workspace package that provides it
_LAUNCHED_MODULES = {
    "orchard_inference.__main__": "orchard-inference",
    "orchard_evaluation.__main__": "orchard-evaluation",
    "orchard_retraining.__main__": "orchard-retraining",
    "orchard_gateway.__main__": "orchard-gateway",
    "orchard_pipelines.train": "orchard-pipelines",
    "mlflow.__main__": "mlflow",
}


# The local platform is for trying the whole loop in minutes, so it runs at compressed
# timescales: drift is judged every 10 s over the last 2 minutes, a canary step lasts 10 s.
# Each is only a default: a variable already set in the environment of `orchard up` wins.
# variable → (value, why). README and docs point here.
LOCAL_TIMESCALES: Final[dict[str, tuple[str, str]]] = {
    "ORCHARD_EVALUATION_MONITOR_INTERVAL_S": ("10", "judge drift and quality every 10 s"),
    "ORCHARD_EVALUATION_MONITOR_WINDOW_S": ("120", "drift over the last 2 minutes of traffic"),
    "ORCHARD_EVALUATION_QUALITY_WINDOW_S": ("600", "quality over the last 10 minutes"),
    "ORCHARD_EVALUATION_TRIGGER_COOLDOWN_S": ("60", "while drift lasts, a trigger every minute"),
    "ORCHARD_EVALUATION_DRIFT_MIN_ROWS": ("500", "kept: fewer rows make drift verdicts noise"),
    "ORCHARD_EVALUATION_BUCKET_S": ("10", "10 s window profiles, so 2 minutes hold 12"),
    "ORCHARD_EVALUATION_ROLLUP_S": ("600", "10 min rollups (a multiple of BUCKET_S)"),
    "ORCHARD_EVALUATION_REFERENCE_RETRY_S": ("5", "a new version's reference is found at once"),
    "ORCHARD_RETRAINING_TRIGGER_COOLDOWN_S": ("300", "one retraining per model per 5 min"),
    "ORCHARD_RETRAINING_TRAINING_WINDOW_S": ("60", "retrain on the last minute of labeled traffic"),
    "ORCHARD_RETRAINING_TRIGGER_RETRY_AFTER_S": (
        "15",
        "a retraining that shipped nothing may be retried 15 s later, on more data",
    ),
    "ORCHARD_RETRAINING_ROLLOUT_DEFAULTS": (
        json.dumps(
            {
                "steps": [20, 50, 100],
                "step_interval_s": 10,
                "min_samples": 50,
                "max_wait_s": 120,
                "on_timeout": "rollback",
                "compare": {"error_margin": 0.05, "latency_margin": 0.05, "accuracy_margin": 0.05},
            },
            separators=(",", ":"),
        ),
        "canary 20 → 50 → 100 %, judged every 10 s on 50+ samples, 2 min per step at most",
    ),
    "ORCHARD_GATEWAY_ROUTES_POLL_S": ("1", "route changes reach the gateway within a second"),
    "ORCHARD_GATEWAY_EVENTS_FLUSH_INTERVAL_S": ("0.5", "prediction events reach evaluation fast"),
}


def _local_defaults(prefix: str) -> dict[str, str]:
    """The :data:`LOCAL_TIMESCALES` of one service, less those the user's environment sets."""
    return {
        name: value
        for name, (value, _why) in LOCAL_TIMESCALES.items()
        if name.startswith(prefix) and name not in os.environ
    }


class PlatformError(Exception):
    """The platform cannot start: a missing package, a registry problem, bad training output."""


def _url_host(host: str) -> str:
    """The address clients use to reach a server bound to ``host``."""
    connect = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{connect}]" if ":" in connect else connect


@dataclass(frozen=True)
class PlatformConfig:
    """Everything ``orchard up`` needs to know; ``data_dir`` should be absolute."""

    data_dir: Path
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    inference_port: int = 8080
    evaluation_port: int = 8002
    retraining_port: int = 8003
    gateway_port: int = 8000
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    ready_timeout: float = 120.0
    train_timeout: float = 1800.0
    stop_timeout: float = 15.0
    # Prometheus and Alertmanager run only when installed (and with a monitoring/ folder).
    monitoring: bool = False

    @property
    def ports(self) -> dict[str, int]:
        """Each port this platform will listen on, keyed by the option that sets it."""
        ports = {
            "--mlflow-port": self.mlflow_port,
            "--inference-port": self.inference_port,
            "--evaluation-port": self.evaluation_port,
            "--retraining-port": self.retraining_port,
            "--gateway-port": self.gateway_port,
        }
        if self.monitoring:
            ports["--prometheus-port"] = self.prometheus_port
            ports["--alertmanager-port"] = self.alertmanager_port
        return ports

    def listen(self, port: int) -> str:
        """``host:port`` for a server's listen flag."""
        return f"{self.host}:{port}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus (when it runs)."""
        return self._url(self.prometheus_port)

    @property
    def alertmanager_url(self) -> str:
        """Alertmanager (when it runs)."""
        return self._url(self.alertmanager_port)

    def _url(self, port: int) -> str:
        return f"http://{_url_host(self.host)}:{port}"

    @property
    def mlflow_url(self) -> str:
        """MLflow's tracking server (and UI)."""
        return self._url(self.mlflow_port)

    @property
    def inference_url(self) -> str:
        """The inference runtime."""
        return self._url(self.inference_port)

    @property
    def evaluation_url(self) -> str:
        """The evaluation service, which the gateway logs predictions and feedback to."""
        return self._url(self.evaluation_port)

    @property
    def retraining_url(self) -> str:
        """The retraining service, which owns the route table, pipeline runs and rollouts."""
        return self._url(self.retraining_port)

    @property
    def gateway_url(self) -> str:
        """The gateway, the public entry point."""
        return self._url(self.gateway_port)


def _flags(options: Mapping[str, str]) -> list[str]:
    return [part for option in options.items() for part in option]


def mlflow_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The MLflow tracking server: SQLite backend and proxied artifacts in the data folder."""
    mlflow_dir = cfg.data_dir / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    env = {}
    # MLflow's job runner (GenAI scorers, trace rollups) adds eight huey processes that
    # Orchard does not use; a user who wants them can still set the variable.
    if "MLFLOW_SERVER_ENABLE_JOB_EXECUTION" not in os.environ:
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return ProcessSpec(
        name="mlflow",
        argv=[
            *(sys.executable, "-m", "mlflow", "server"),
            *_flags(
                {
                    "--backend-store-uri": f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                    "--artifacts-destination": str(mlflow_dir / "artifacts"),
                    "--host": cfg.host,
                    "--port": str(cfg.mlflow_port),
                    "--workers": "1",
                }
            ),
        ],
        env=env,
        ready_url=f"{cfg.mlflow_url}/health",
        ready_timeout=cfg.ready_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
    )


def training_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The first-run job that trains the demo models and sets their ``champion`` alias."""
    return ProcessSpec(
        name="train",
        argv=[
            *(sys.executable, "-m", "orchard_pipelines.train"),
            *_flags({"--model": "all", "--tracking-uri": cfg.mlflow_url}),
            "--json",
        ],
        env={"MLFLOW_TRACKING_URI": cfg.mlflow_url},
        ready_timeout=cfg.train_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
        capture_stdout=True,
    )


def inference_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The inference runtime, serving each demo model's champion."""
    models = {name: f"models:/{name}@{CHAMPION}" for name in DEMO_MODELS}
    return ProcessSpec(
        name="inference",
        argv=[sys.executable, "-m", "orchard_inference"],
        env={
            "ORCHARD_INFERENCE_HOST": cfg.host,
            "ORCHARD_INFERENCE_PORT": str(cfg.inference_port),
            "ORCHARD_INFERENCE_MODELS": json.dumps(models),
            "MLFLOW_TRACKING_URI": cfg.mlflow_url,
        },
        ready_url=f"{cfg.inference_url}/v2/health/ready",
        ready_timeout=cfg.ready_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
    )


def evaluation_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The evaluation service, its SQLite database in the data folder.

    It reads the models' reference profiles from the local MLflow and sends drift and
    quality triggers to retraining.
    """
    return ProcessSpec(
        name="evaluation",
        argv=[sys.executable, "-m", "orchard_evaluation"],
        env={
            "ORCHARD_EVALUATION_HOST": cfg.host,
            "ORCHARD_EVALUATION_PORT": str(cfg.evaluation_port),
            "ORCHARD_EVALUATION_DATABASE_URL": f"sqlite:///{cfg.data_dir / 'evaluation.db'}",
            # Evidently HTML reports (on demand and daily) live with the rest of the state.
            "ORCHARD_EVALUATION_REPORTS_DIR": str(cfg.data_dir / "reports"),
            # Drift and quality triggers go to the retraining service.
            "ORCHARD_EVALUATION_RETRAINING_URL": cfg.retraining_url,
            "MLFLOW_TRACKING_URI": cfg.mlflow_url,
            **_local_defaults("ORCHARD_EVALUATION_"),
        },
        ready_url=f"{cfg.evaluation_url}/readyz",
        ready_timeout=cfg.ready_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
    )


def retraining_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The retraining service: pipeline runs as local processes, candidates in the runtime.

    Its database and the runs' logs live in the data folder; the route table it serves
    covers the demo models.
    """
    return ProcessSpec(
        name="retraining",
        argv=[sys.executable, "-m", "orchard_retraining"],
        env={
            "ORCHARD_RETRAINING_HOST": cfg.host,
            "ORCHARD_RETRAINING_PORT": str(cfg.retraining_port),
            "ORCHARD_RETRAINING_DATABASE_URL": f"sqlite:///{cfg.data_dir / 'retraining.db'}",
            "ORCHARD_RETRAINING_RUNS_DIR": str(cfg.data_dir / "runs"),
            "ORCHARD_RETRAINING_MLFLOW_TRACKING_URI": cfg.mlflow_url,
            "MLFLOW_TRACKING_URI": cfg.mlflow_url,  # also for the pipeline runs it starts
            "ORCHARD_RETRAINING_EVALUATION_URL": cfg.evaluation_url,
            "ORCHARD_RETRAINING_RUNTIME_URL": cfg.inference_url,
            "ORCHARD_RETRAINING_MODELS": json.dumps(list(DEMO_MODELS)),
            "ORCHARD_RETRAINING_TRAFFIC_BACKEND": "local",
            "ORCHARD_RETRAINING_PIPELINE_BACKEND": "local",
            **_local_defaults("ORCHARD_RETRAINING_"),
        },
        ready_url=f"{cfg.retraining_url}/readyz",
        ready_timeout=cfg.ready_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
    )


def gateway_spec(cfg: PlatformConfig) -> ProcessSpec:
    """The gateway, polling its route table from retraining.

    It logs prediction events and forwards feedback to the evaluation service.
    """
    return ProcessSpec(
        name="gateway",
        argv=[sys.executable, "-m", "orchard_gateway"],
        env={
            "ORCHARD_GATEWAY_HOST": cfg.host,
            "ORCHARD_GATEWAY_PORT": str(cfg.gateway_port),
            "ORCHARD_GATEWAY_ROUTES_URL": f"{cfg.retraining_url}/v1/routes",
            # Async batch jobs live with the rest of the platform's state.
            "ORCHARD_GATEWAY_JOBS_DIR": str(cfg.data_dir / "jobs"),
            "ORCHARD_GATEWAY_EVALUATION_URL": cfg.evaluation_url,
            **_local_defaults("ORCHARD_GATEWAY_"),
        },
        ready_url=f"{cfg.gateway_url}/readyz",
        ready_timeout=cfg.ready_timeout,
        stop_timeout=cfg.stop_timeout,
        cwd=cfg.data_dir,
    )


def _module_exists(dotted: str) -> bool:
    # Walks the package path without importing anything: apps are run, never imported.
    parent_name, _, leaf = dotted.rpartition(".")
    if not parent_name:
        return importlib.util.find_spec(leaf) is not None
    parent = importlib.util.find_spec(parent_name)
    if parent is None or parent.submodule_search_locations is None:
        return False
    spec = importlib.machinery.PathFinder.find_spec(leaf, list(parent.submodule_search_locations))
    return spec is not None


def missing_modules(modules: Iterable[str] = _LAUNCHED_MODULES) -> list[str]:
    """Which of the modules ``orchard up`` runs are not installed, as readable messages."""
    return [
        f"{module} (package {_LAUNCHED_MODULES.get(module, module.partition('.')[0])})"
        for module in modules
        if not _module_exists(module)
    ]


def champion_versions(
    client: httpx.Client, mlflow_url: str, models: Sequence[str] = DEMO_MODELS
) -> dict[str, str | None]:
    """The registry version each model's ``champion`` alias points at (``None``: no alias).

    Raises:
        PlatformError: MLflow answered something other than the version or "not found".
    """
    versions: dict[str, str | None] = {}
    for name in models:
        try:
            response = client.get(
                f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
                params={"name": name, "alias": CHAMPION},
            )
        except httpx.HTTPError as e:
            raise PlatformError(f"could not ask MLflow for {name}@{CHAMPION}: {e}") from e
        if response.status_code == 404:
            versions[name] = None
        elif response.status_code == 200:
            versions[name] = str(response.json()["model_version"]["version"])
        else:
            raise PlatformError(
                f"MLflow answered {response.status_code} for {name}@{CHAMPION}: "
                f"{response.text[:200]}"
            )
    return versions


@dataclass(frozen=True)
class TrainedModel:
    """One model registered by the training job."""

    name: str
    version: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]


def parse_training_output(stdout_lines: Sequence[str]) -> list[TrainedModel]:
    """Read the training job's result: its last stdout line, ``{"models": [...]}``.

    Raises:
        PlatformError: The line is missing or not that document.
    """
    last = next((line for line in reversed(stdout_lines) if line.strip()), None)
    if last is None:
        raise PlatformError("training printed no result on stdout")
    try:
        document: Any = json.loads(last)
        return [
            TrainedModel(
                name=str(m["name"]),
                version=str(m["version"]),
                run_id=str(m.get("run_id", "")),
                model_uri=str(m.get("model_uri", "")),
                metrics={str(k): float(v) for k, v in (m.get("metrics") or {}).items()},
            )
            for m in document["models"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise PlatformError(f"training printed an unexpected result: {last[:200]!r}") from e


_EXAMPLE_VALUES = {"BOOL": False, "BYTES": "a"}


def example_curl(client: httpx.Client, cfg: PlatformConfig, model: str = "digits") -> str:
    """A ready-to-paste curl that asks the gateway for a prediction.

    The request is built from the runtime's metadata for ``model`` (one row, zeros), so it
    matches whatever signature the model was trained with.
    """
    url = f"{cfg.gateway_url}/v2/models/{model}/infer"
    try:
        metadata = client.get(f"{cfg.inference_url}/v2/models/{model}").json()
        inputs = []
        for tensor in metadata["inputs"]:
            shape = [1 if int(d) < 0 else int(d) for d in tensor["shape"]] or [1]
            count = 1
            for d in shape:
                count *= d
            value = _EXAMPLE_VALUES.get(tensor["datatype"], 0)
            inputs.append(
                {
                    "name": tensor["name"],
                    "shape": shape,
                    "datatype": tensor["datatype"],
                    "data": [value] * count,
                }
            )
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return f"curl -s {cfg.gateway_url}/v2/models/{model}   # inputs the model expects"
    body = json.dumps({"inputs": inputs}, separators=(",", ":"))
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d '{body}'"
