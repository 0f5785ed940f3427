"""``orchard pipeline``: start a retraining pipeline run by hand, follow it, read its log."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from orchard_cli.retraining_client import (
    API_ERROR,
    DEFAULT_RETRAINING_URL,
    OutageNotice,
    PollInterval,
    RetrainingClient,
    RetrainingError,
    RetrainingUrl,
    UnreachableTimeout,
    exit_for,
    one_or_newest,
    retry_while_unreachable,
)

__all__ = ["EXIT_CODES", "FINISHED", "app", "run_summary", "watch_run"]

FINISHED: Final = {"succeeded": 0, "failed": 1, "cancelled": 1}
"""Finished statuses and the exit status ``--wait`` gives each."""

EXIT_CODES: Final = (
    "Exit status with --wait: 0 succeeded; 1 failed or cancelled; 2 usage error or a request "
    "retraining refused; 3 retraining unreachable for longer than --unreachable-timeout."
)

app = typer.Typer(
    name="pipeline",
    help="Retraining pipeline runs: train a candidate, gate it, hand it to a rollout.",
    no_args_is_help=True,
    epilog=EXIT_CODES,
)

Json = Annotated[bool, typer.Option("--json", help="Print the run as JSON on stdout.")]


def run_summary(run: Mapping[str, Any]) -> str:
    """One line: the run, its status, and what it produced so far."""
    text = f"Pipeline run {run.get('id')} of {run.get('model')}: {run.get('status')}"
    stage = run.get("stage")
    if run.get("status") == "running" and stage:
        text += f" ({stage}, {float(run.get('progress') or 0):.0%})"
    if run.get("duration_s") is not None:
        text += f" in {float(run['duration_s']):.0f} s"
    if run.get("candidate_version"):
        text += f"; candidate version {run['candidate_version']}"
    if run.get("gate_verdict"):
        text += f"; quality gate {run['gate_verdict']}"
    if run.get("rollout_id") is not None:
        text += f"; rollout {run['rollout_id']} started"
    if run.get("error"):
        text += f"; error: {run['error']}"
    return text


@contextlib.contextmanager
def _progress(console: Console, run: Mapping[str, Any]) -> Iterator[Callable[[Any], None]]:
    """A progress bar on a terminal; elsewhere, a line for each new stage."""
    if not console.is_terminal:
        last: list[Any] = [None]

        def line(current: Mapping[str, Any]) -> None:
            stage = (current.get("status"), current.get("stage"))
            if stage != last[0]:
                last[0] = stage
                progress = float(current.get("progress") or 0)
                console.print(
                    f"{current.get('status')}: {current.get('stage') or '-'} ({progress:.0%})",
                    markup=False,
                    highlight=False,
                )

        yield line
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(str(run.get("stage") or run.get("status")), total=1.0)

        def update(current: Mapping[str, Any]) -> None:
            description = f"{current.get('status')}: {current.get('stage') or '-'}"
            bar.update(task, completed=float(current.get("progress") or 0), description=description)

        yield update


def watch_run(
    client: RetrainingClient,
    run: dict[str, Any],
    console: Console,
    errors: Console,
    *,
    unreachable_timeout_s: float = 60.0,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, dict[str, Any]]:
    """Poll ``run`` until it finishes, showing its progress; returns (exit status, last run).

    Raises:
        RetrainingError: it stayed unreachable past the timeout, or refused a request.
    """
    notice = OutageNotice(errors, unreachable_timeout_s)
    with _progress(console, run) as show:
        while True:
            show(run)
            if run.get("status") in FINISHED:
                break
            sleep(interval_s)
            run = retry_while_unreachable(
                functools.partial(client.get_pipeline_run, run["id"]),
                timeout_s=unreachable_timeout_s,
                on_retry=notice,
                interval_s=interval_s,
                clock=clock,
                sleep=sleep,
            )
            notice.recovered()
    console.print(run_summary(run), markup=False, highlight=False)
    return FINISHED[str(run["status"])], run


def _consoles(json_out: bool) -> tuple[Console, Console, Console]:
    out = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    return out, errors if json_out else out, errors


@app.command(epilog=EXIT_CODES)
def run(
    model: Annotated[str, typer.Option(help="The model to retrain.")],
    defect: Annotated[
        str | None,
        typer.Option(help="Build a broken candidate on purpose ('errors'), to test rollouts."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the training data.")] = None,
    rows: Annotated[int | None, typer.Option(help="Training rows (demo data).")] = None,
    no_rollout: Annotated[
        bool, typer.Option("--no-rollout", help="Do not roll the candidate out on its own.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    actor: Annotated[
        str | None,
        typer.Option(envvar="ORCHARD_ACTOR", help="Who is asking, for the audit trail."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run to its end.")] = False,
    json_out: Json = False,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
    unreachable_timeout: UnreachableTimeout = 60.0,
    interval: PollInterval = 1.0,
) -> None:
    """Start a pipeline run (train, register, quality gate; then a rollout unless told not to)."""
    options = {"defect": defect, "seed": seed, "n_rows": rows}
    body: dict[str, Any] = {"model": model}
    if given := {k: v for k, v in options.items() if v is not None}:
        body["options"] = given
    if no_rollout:
        body["auto_rollout"] = False
    if reason is not None:
        body["reason"] = reason
    if actor is not None:
        body["actor"] = actor
    out, progress, errors = _consoles(json_out)
    code = 0
    with RetrainingClient(retraining_url) as client:
        try:
            started = retry_while_unreachable(
                lambda: client.start_pipeline_run(body),
                timeout_s=unreachable_timeout,
                on_retry=OutageNotice(errors, unreachable_timeout),
                only_unsent=True,
            )
            progress.print(run_summary(started), markup=False, highlight=False)
            if wait:
                code, started = watch_run(
                    client,
                    started,
                    progress,
                    errors,
                    unreachable_timeout_s=unreachable_timeout,
                    interval_s=interval,
                )
        except RetrainingError as e:
            raise exit_for(e, errors) from None
    if json_out:
        out.print_json(data=started)
    raise typer.Exit(code)


@app.command()
def status(
    run_id: Annotated[int | None, typer.Argument(help="Run id (default: the newest).")] = None,
    model: Annotated[str | None, typer.Option(help="Newest run of this model.")] = None,
    logs: Annotated[bool, typer.Option("--logs", help="Also print the run's log.")] = False,
    tail: Annotated[int, typer.Option(min=1, help="Log lines to print with --logs.")] = 50,
    json_out: Json = False,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
    unreachable_timeout: UnreachableTimeout = 60.0,
) -> None:
    """Show a pipeline run (exit 2 when there is none, 3 when retraining is unreachable)."""
    out, _, errors = _consoles(json_out)
    notice = OutageNotice(errors, unreachable_timeout)
    with RetrainingClient(retraining_url) as client:
        try:
            current = one_or_newest(
                run_id,
                lambda: client.list_pipeline_runs(model, limit=1),
                client.get_pipeline_run,
                timeout_s=unreachable_timeout,
                on_retry=notice,
            )
            if current is None:
                errors.print(f"No pipeline runs{f' of {model}' if model else ''} yet.")
                raise typer.Exit(API_ERROR)
            found = int(current["id"])
            log = client.pipeline_logs(found, tail=tail) if logs else None
        except RetrainingError as e:
            raise exit_for(e, errors) from None
    if json_out:
        out.print_json(data=current if log is None else {**current, "logs": log})
        return
    out.print(run_summary(current), markup=False, highlight=False)
    gate = current.get("gate")
    if isinstance(gate, Mapping) and gate.get("reason"):
        out.print(f"  gate: {gate['reason']}", markup=False, highlight=False)
    if log is not None:
        out.print(f"--- last {tail} log lines ---", markup=False)
        out.print(log.rstrip("\n"), markup=False, highlight=False)


@app.command()
def cancel(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
) -> None:
    """Cancel a pending or running pipeline run (exit 2 when it has finished)."""
    errors = Console(stderr=True, soft_wrap=True)
    with RetrainingClient(retraining_url) as client:
        try:
            cancelled = client.cancel_pipeline_run(run_id)
        except RetrainingError as e:
            raise exit_for(e, errors) from None
    Console(soft_wrap=True).print(run_summary(cancelled), markup=False, highlight=False)
