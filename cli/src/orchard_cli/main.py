"""The ``orchard`` command line (typer). Nothing runs at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
    gateway_port: Annotated[
        int, typer.Option(min=1, max=65535, envvar="ORCHARD_GATEWAY_PORT", help="Gateway port.")
    ] = 8000,
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
    """Start the local platform (MLflow, runtime, evaluation, gateway) and supervise it."""
    config = PlatformConfig(
        data_dir=data_dir.expanduser().resolve(),
        host=host,
        mlflow_port=mlflow_port,
        inference_port=inference_port,
        evaluation_port=evaluation_port,
        gateway_port=gateway_port,
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
