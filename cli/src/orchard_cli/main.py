"""The ``orchard`` command line (typer). Nothing runs at import time."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchard_cli import pipeline, rollout
from orchard_cli.monitoring import monitoring_available
from orchard_cli.platform import PlatformConfig
from orchard_cli.status import run_status
from orchard_cli.up import run_up

__all__ = ["app"]

app = typer.Typer(
    name="orchard",
    help="Orchard: serve, watch, judge, retrain and roll out ML models.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(rollout.app, name="rollout")
app.add_typer(pipeline.app, name="pipeline")

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="ORCHARD_DATA_DIR",
        help=(
            "Folder for all local state: the MLflow and evaluation databases, MLflow's "
            "artifacts, routes, jobs, lock."
        ),
    ),
]


@app.command()
def up(
    data_dir: DataDir = Path(".orchard"),
    host: Annotated[
        str, typer.Option(envvar="ORCHARD_HOST", help="Address every service listens on.")
    ] = "127.0.0.1",
    mlflow_port: Annotated[
        int, typer.Option(min=1, max=65535, envvar="ORCHARD_MLFLOW_PORT", help="MLflow port.")
    ] = 5000,
    inference_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, envvar="ORCHARD_INFERENCE_PORT", help="Inference runtime port."
        ),
    ] = 8080,
    evaluation_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, envvar="ORCHARD_EVALUATION_PORT", help="Evaluation service port."
        ),
    ] = 8002,
    retraining_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, envvar="ORCHARD_RETRAINING_PORT", help="Retraining service port."
        ),
    ] = 8003,
    gateway_port: Annotated[
        int, typer.Option(min=1, max=65535, envvar="ORCHARD_GATEWAY_PORT", help="Gateway port.")
    ] = 8000,
    prometheus_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            envvar="ORCHARD_PROMETHEUS_PORT",
            help="Prometheus port (it runs when installed).",
        ),
    ] = 9090,
    alertmanager_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            envvar="ORCHARD_ALERTMANAGER_PORT",
            help="Alertmanager port (it runs when installed).",
        ),
    ] = 9093,
    no_monitoring: Annotated[
        bool,
        typer.Option(
            "--no-monitoring", help="Do not start Prometheus and Alertmanager even if installed."
        ),
    ] = False,
    ready_timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            envvar="ORCHARD_READY_TIMEOUT",
            help="Seconds each service may take to become ready (the runtime loads models).",
        ),
    ] = 120.0,
    train_timeout: Annotated[
        float,
        typer.Option(
            min=1.0, envvar="ORCHARD_TRAIN_TIMEOUT", help="Seconds the first-run training may take."
        ),
    ] = 1800.0,
    stop_timeout: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar="ORCHARD_STOP_TIMEOUT",
            help="Seconds each service gets to exit after SIGTERM before SIGKILL.",
        ),
    ] = 15.0,
) -> None:
    """Start the local platform (MLflow, runtime, evaluation, retraining, gateway) and supervise it.

    It runs at compressed timescales (drift judged every 10 s, 10 s canary steps): see
    LOCAL_TIMESCALES in orchard_cli/platform.py; a variable set in your environment wins.
    """
    config = PlatformConfig(
        data_dir=data_dir.expanduser().resolve(),
        host=host,
        mlflow_port=mlflow_port,
        inference_port=inference_port,
        evaluation_port=evaluation_port,
        retraining_port=retraining_port,
        gateway_port=gateway_port,
        prometheus_port=prometheus_port,
        alertmanager_port=alertmanager_port,
        monitoring=not no_monitoring and monitoring_available(),
        ready_timeout=ready_timeout,
        train_timeout=train_timeout,
        stop_timeout=stop_timeout,
    )
    # soft_wrap: long lines (URLs, the example curl) must stay copy-pastable, never wrapped.
    raise typer.Exit(run_up(config, Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)))


@app.command()
def status(data_dir: DataDir = Path(".orchard")) -> None:
    """Say whether the platform is running and probe each service's health."""
    raise typer.Exit(run_status(data_dir.expanduser().resolve(), Console(soft_wrap=True)))


class Scenario(enum.StrEnum):
    """Which demo scenarios to play."""

    DRIFT = "drift"
    BAD_CANDIDATE = "bad-candidate"
    ALL = "all"


def _url(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}-url", envvar=f"ORCHARD_{name.upper()}_URL", help=help_text)


@app.command()
def demo(
    scenario: Annotated[Scenario, typer.Option(help="What to play.")] = Scenario.ALL,
    rate: Annotated[float, typer.Option(min=0.1, help="Requests per second.")] = 25.0,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds each scenario may take.")
    ] = 900.0,
    warmup: Annotated[
        float, typer.Option(min=0.0, help="Seconds of healthy traffic before the drift.")
    ] = 60.0,
    label_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds before each true label is sent.")
    ] = 2.0,
    gateway_url: Annotated[str | None, _url("gateway", "The gateway.")] = None,
    retraining_url: Annotated[str | None, _url("retraining", "The retraining service.")] = None,
    evaluation_url: Annotated[str | None, _url("evaluation", "The evaluation service.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Plain lines, no live view.")] = False,
    data_dir: DataDir = Path(".orchard"),
) -> None:
    """Drive the closed loop of the platform `orchard up` runs: traffic, drift, a bad candidate.

    drift: healthy traffic, then drifted traffic; the platform must detect it, retrain and
    promote a new champion on its own. bad-candidate: a candidate that passed offline checks
    but fails in serving is rolled out by hand; the canary must roll it back. Exit status: 0
    when every chosen scenario succeeded, 1 otherwise (with the reason).
    """
    from orchard_cli.demo import DemoConfig, platform_urls, run_demo

    urls = platform_urls(data_dir.expanduser().resolve())
    chosen = ("drift", "bad-candidate") if scenario is Scenario.ALL else (scenario.value,)
    config = DemoConfig(
        gateway_url=gateway_url or urls["gateway"],
        retraining_url=retraining_url or urls["retraining"],
        evaluation_url=evaluation_url or urls["evaluation"],
        scenarios=chosen,
        rate=rate,
        timeout_s=timeout,
        warmup_s=warmup,
        label_delay_s=label_delay,
        quiet=quiet,
    )
    raise typer.Exit(run_demo(config, Console(soft_wrap=True)))
