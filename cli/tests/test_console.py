"""Prefixed log lines: aligned names, plain text when redirected, colors on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from orchard_cli.console import PrefixedLog


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    if terminal:
        return Console(file=out, force_terminal=True, width=40, color_system="standard"), out
    # As `orchard up` creates it: colors decided by whether the output is a terminal.
    return Console(file=out, width=40), out


def test_lines_are_prefixed_with_the_padded_name_and_never_wrapped():
    console, out = _console(terminal=False)
    log = PrefixedLog(console, ["mlflow", "inference"])
    long_line = "x" * 200

    log("mlflow", "Listening at: http://127.0.0.1:5000 [1234]")
    log("inference", long_line)

    assert out.getvalue().splitlines() == [
        "mlflow    | Listening at: http://127.0.0.1:5000 [1234]",
        f"inference | {long_line}",
    ]


def test_output_to_a_file_has_no_escape_codes():
    console, out = _console(terminal=False)

    PrefixedLog(console)("gateway", "ready")

    assert "\x1b" not in out.getvalue()


def test_each_process_gets_its_own_color_on_a_terminal():
    console, out = _console(terminal=True)
    log = PrefixedLog(console, ["mlflow", "gateway"])

    log("mlflow", "a")
    log("gateway", "b")

    first, second = out.getvalue().splitlines()
    assert first.startswith("\x1b[")
    assert first[: first.index("m")] != second[: second.index("m")]


def test_markup_in_a_log_line_is_printed_literally():
    console, out = _console(terminal=False)

    PrefixedLog(console)("svc", "[bold]not markup[/bold] :smile:")

    assert out.getvalue() == "svc | [bold]not markup[/bold] :smile:\n"
