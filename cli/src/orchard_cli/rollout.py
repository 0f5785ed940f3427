"""``orchard rollout``: start, watch, promote and abort rollouts of candidate versions."""

from __future__ import annotations

import contextlib
import enum
import getpass
import json
from collections.abc import Mapping
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

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
from orchard_cli.rollout_watch import (
    decision_line,
    fmt_number,
    rollout_summary,
    status_line,
    watch_rollout,
)

__all__ = ["EXIT_CODES", "app"]

EXIT_CODES: Final = (
    "Exit status with --wait: 0 promoted; 1 rolled back or aborted; 2 usage error or a "
    "request retraining refused; 3 retraining unreachable for longer than "
    "--unreachable-timeout (brief outages are retried and said so on stderr)."
)


class Strategy(enum.StrEnum):
    """How traffic moves to the candidate (the service's RolloutSpec.strategy)."""

    CANARY = "canary"
    AB = "ab"
    SHADOW_FIRST = "shadow_first"


class OnTimeout(enum.StrEnum):
    """What an INCONCLUSIVE step does when its wait is over."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"
    HOLD = "hold"


app = typer.Typer(
    name="rollout",
    help="Roll candidate versions out (canary steps, A/B, shadow first) and watch them.",
    no_args_is_help=True,
    epilog=EXIT_CODES,
)

Wait = Annotated[
    bool, typer.Option("--wait", help="Follow the rollout until it finishes (see exit status).")
]
Json = Annotated[bool, typer.Option("--json", help="Print the rollout as JSON on stdout.")]
Actor = Annotated[
    str | None,
    typer.Option(envvar="ORCHARD_ACTOR", help="Who is acting, for the audit trail (your login)."),
]
Reason = Annotated[str | None, typer.Option(help="Why, for the audit trail.")]


def _actor(actor: str | None) -> str | None:
    if actor:
        return actor
    with contextlib.suppress(Exception):  # no login name in some containers
        return getpass.getuser()
    return None


def _consoles(json_out: bool) -> tuple[Console, Console]:
    out = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    # With --json, stdout carries only the document; progress goes to stderr.
    return out, errors if json_out else out


def _steps(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a list of percentages like 5,25,50,100"
        ) from None
    return [int(v) if v.is_integer() else v for v in values]


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``key=json`` pairs as a nested dict; ``compare.alpha=0.01`` sets a nested key."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--set")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string
        *parents, leaf = key.strip().split(".")
        target = result
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return result


def _finish(
    client: RetrainingClient,
    rollout: dict[str, Any],
    *,
    wait: bool,
    json_out: bool,
    unreachable_timeout: float,
    shown: int,
    interval: float,
) -> None:
    out, progress = _consoles(json_out)
    errors = Console(stderr=True, soft_wrap=True)
    code = 0
    if wait:
        code, rollout = watch_rollout(
            client,
            rollout,
            progress,
            errors,
            unreachable_timeout_s=unreachable_timeout,
            interval_s=interval,
            shown=shown,
        )
    if json_out:
        out.print_json(data=rollout)
    raise typer.Exit(code)


@app.command(epilog=EXIT_CODES)
def start(
    model: Annotated[str, typer.Option(help="The model to roll out.")],
    candidate: Annotated[str, typer.Option(help="The candidate's registry version.")],
    champion: Annotated[
        str | None, typer.Option(help="Baseline version (default: champion).")
    ] = None,
    strategy: Annotated[
        Strategy | None, typer.Option(help="How traffic moves (default canary).")
    ] = None,
    steps: Annotated[str | None, typer.Option(help="Canary weights, e.g. 5,25,50,100.")] = None,
    step_interval: Annotated[float | None, typer.Option(help="Seconds between judgments.")] = None,
    min_samples: Annotated[int | None, typer.Option(help="Fewest candidate samples.")] = None,
    max_wait: Annotated[float | None, typer.Option(help="Longest wait for a verdict.")] = None,
    on_timeout: Annotated[
        OnTimeout | None, typer.Option(help="What a verdict-less step does at --max-wait.")
    ] = None,
    shadow_percent: Annotated[float | None, typer.Option(help="Mirrored share.")] = None,
    experiment_id: Annotated[str | None, typer.Option(help="A/B experiment id.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other setting as key=json, e.g. compare.alpha=0.01."),
    ] = None,
    actor: Actor = None,
    wait: Wait = False,
    json_out: Json = False,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
    unreachable_timeout: UnreachableTimeout = 60.0,
    interval: PollInterval = 1.0,
) -> None:
    """Start a rollout of a candidate version; with --wait, follow it to the end."""
    given = {
        "champion_version": champion,
        "strategy": None if strategy is None else strategy.value,
        "steps": _steps(steps),
        "step_interval_s": step_interval,
        "min_samples": min_samples,
        "max_wait_s": max_wait,
        "on_timeout": None if on_timeout is None else on_timeout.value,
        "shadow_percent": shadow_percent,
        "experiment_id": experiment_id,
    }
    body: dict[str, Any] = {"model": model, "candidate_version": candidate}
    body |= {k: v for k, v in given.items() if v is not None} | _settings(set_ or [])
    if (who := _actor(actor)) is not None:
        body["actor"] = who
    progress = _consoles(json_out)[1]
    errors = Console(stderr=True, soft_wrap=True)
    with RetrainingClient(retraining_url) as client:
        try:
            rollout = retry_while_unreachable(
                lambda: client.start_rollout(body),
                timeout_s=unreachable_timeout,
                on_retry=OutageNotice(errors, unreachable_timeout),
                only_unsent=True,
            )
            progress.print(rollout_summary(rollout), markup=False, highlight=False)
            _finish(
                client,
                rollout,
                wait=wait,
                json_out=json_out,
                unreachable_timeout=unreachable_timeout,
                shown=0,
                interval=interval,
            )
        except RetrainingError as e:
            raise exit_for(e, errors) from None


def _decisions_table(rollout: Mapping[str, Any]) -> Table:
    table = Table("decision", box=None, show_header=False)
    for decision in (rollout.get("state") or {}).get("decisions") or []:
        table.add_row(decision_line(decision, rollout))
    return table


@app.command(epilog=EXIT_CODES)
def status(
    rollout_id: Annotated[
        int | None, typer.Argument(help="Rollout id (default: the newest).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Newest rollout of this model.")] = None,
    wait: Wait = False,
    json_out: Json = False,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
    unreachable_timeout: UnreachableTimeout = 60.0,
    interval: PollInterval = 1.0,
) -> None:
    """Show a rollout and its decisions; with --wait, follow it to the end."""
    progress = _consoles(json_out)[1]
    errors = Console(stderr=True, soft_wrap=True)
    notice = OutageNotice(errors, unreachable_timeout)
    with RetrainingClient(retraining_url) as client:
        try:
            found = one_or_newest(
                rollout_id,
                lambda: client.list_rollouts(model, limit=1),
                client.get_rollout,
                timeout_s=unreachable_timeout,
                on_retry=notice,
            )
            if found is None:
                errors.print(f"No rollouts{f' of {model}' if model else ''} yet.")
                raise typer.Exit(API_ERROR)
            rollout = found
            progress.print(rollout_summary(rollout), markup=False, highlight=False)
            if not json_out:
                progress.print(_decisions_table(rollout))
                progress.print(status_line(rollout), markup=False, highlight=False)
            shown = len((rollout.get("state") or {}).get("decisions") or [])
            _finish(
                client,
                rollout,
                wait=wait,
                json_out=json_out,
                unreachable_timeout=unreachable_timeout,
                shown=shown,
                interval=interval,
            )
        except RetrainingError as e:
            raise exit_for(e, errors) from None


def _by_hand(action: str, rollout_id: int, reason: str | None, actor: str | None, url: str) -> None:
    errors = Console(stderr=True, soft_wrap=True)
    with RetrainingClient(url) as client:
        try:
            call = client.promote_rollout if action == "promote" else client.abort_rollout
            rollout = call(rollout_id, actor=_actor(actor), reason=reason)
        except RetrainingError as e:
            raise exit_for(e, errors) from None
    state = rollout.get("state") or {}
    Console(soft_wrap=True).print(
        f"Rollout {rollout_id}: {state.get('status', rollout.get('status'))}, candidate weight "
        f"{fmt_number(float(state.get('candidate_weight') or 0))}%",
        markup=False,
        highlight=False,
    )


@app.command()
def promote(
    rollout_id: Annotated[int, typer.Argument(help="Rollout id.")],
    reason: Reason = None,
    actor: Actor = None,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
) -> None:
    """Promote the candidate now (exit 2 if the rollout is already finished)."""
    _by_hand("promote", rollout_id, reason, actor, retraining_url)


@app.command()
def abort(
    rollout_id: Annotated[int, typer.Argument(help="Rollout id.")],
    reason: Reason = None,
    actor: Actor = None,
    retraining_url: RetrainingUrl = DEFAULT_RETRAINING_URL,
) -> None:
    """Abort now: all traffic back to the champion (exit 2 if already finished)."""
    _by_hand("abort", rollout_id, reason, actor, retraining_url)
