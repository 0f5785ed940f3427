"""The command line the benchmarks share: the wrk load and folder options of ``run.py``, its
timed entry point, and the "redraw the report from saved results" entry point of ``report.py``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from benchmarks.common.wrk import connection_list

__all__ = ["add_folder_options", "add_load_options", "redraw_main", "run_timed"]


def add_load_options(parser: argparse.ArgumentParser, *, initial_warmup_help: str) -> None:
    """Add --duration, --warmup, --initial-warmup, --quiet-wait and --connections."""
    parser.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("BENCH_DURATION") or 10),
        help="seconds per measurement (default: $BENCH_DURATION, else 10)",
    )
    parser.add_argument("--warmup", type=float, default=1, help="seconds before each measurement")
    parser.add_argument("--initial-warmup", type=float, default=3, help=initial_warmup_help)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="seconds to wait at most for other work on the machine to stop before measuring",
    )
    parser.add_argument("--connections", type=connection_list, default=[1, 16, 64])


def add_folder_options(parser: argparse.ArgumentParser, root: Path) -> None:
    """Add --work-dir (default ``root/.bench``) and --out-dir (``root/docs/benchmarks``)."""
    parser.add_argument("--work-dir", type=Path, default=root / ".bench")
    parser.add_argument("--out-dir", type=Path, default=root / "docs" / "benchmarks")


def run_timed(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main``, say on stderr how long it took, and exit with its status."""
    started = time.monotonic()
    status = main()
    print(f"== done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(status)


def redraw_main(
    results_name: str,
    write_report: Callable[[dict[str, Any], Path], Iterable[Path]],
    argv: list[str] | None = None,
) -> None:
    """Redraw a report from the JSON file (named ``results_name`` by run.py) given on the
    command line, next to that file."""
    parser = argparse.ArgumentParser(description=f"Redraw the report from {results_name}.")
    parser.add_argument("results", type=Path, help=f"{results_name} written by run.py")
    args = parser.parse_args(argv)
    document = json.loads(args.results.read_text())
    for path in write_report(document, args.results.parent):
        print(f"wrote {path}")
