"""Drift verdicts from stored profiles against Evidently on raw rows, and ingest, in one run.

Run from the repository root (``make bench-evaluation``)::

    .venv/bin/python benchmarks/evaluation/run.py [--sizes 100000,1000000] [--quick]

For each window size: stores the window's rows as window profiles in a fresh SQLite database
through the evaluation service's tables (``drift_sides.py prepare``; its cost reported apart),
then, each in a fresh process so that peak memory is its own, times Orchard's verdict (read and
merge the stored buckets, ``detect_drift`` against the reference profile) and Evidently's
``DataDriftPreset`` on the same raw rows, and compares their per-feature verdicts. Then starts
the real service and measures ingest (events/s accepted, and profiled). Writes
``evaluation.json`` (raw), ``evaluation.md`` and ``evaluation.png``. This measures; it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

# Run as a file: the repository root makes benchmarks.* importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common.cli import add_folder_options, run_timed
from benchmarks.common.host import git_revision, machine_facts, wait_for_quiet
from benchmarks.evaluation.data import FEATURES, SHIFTED
from benchmarks.evaluation.ingest import measure_ingest
from benchmarks.evaluation.report import write_report

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parents[1]
SIDES: Final = HERE / "drift_sides.py"
_PACKAGES: Final = ("evidently", "pandas", "numpy", "datasketches", "sqlalchemy", "fastapi")
# --quick: a smoke run of every step in well under a minute (the harness test uses it).
QUICK: Final = {
    "sizes": [2_000, 6_000],
    "bucket_rows": [500],
    "reference_rows": 2_000,
    "orchard_repeats": 2,
    "evidently_repeats": 1,
    "ingest_duration": 2.0,
    "ingest_warmup": 0.0,
    "quiet_wait": 0.0,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    load_at_start = list(os.getloadavg())
    revision = git_revision(ROOT)
    work_dir: Path = (args.work_dir / "evaluation").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    other_load = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else 0.0

    drift = [measure_size(rows, args, work_dir) for rows in args.sizes]
    ingest = None
    if args.ingest:
        print(f"== ingest: {args.clients} clients, {args.batch} events a request", flush=True)
        ingest = measure_ingest(
            work_dir,
            clients=args.clients,
            batch=args.batch,
            duration_s=args.ingest_duration,
            warmup_s=args.ingest_warmup,
        )
        print(
            f"   {ingest['accepted_per_s']:,.0f} events/s accepted, "
            f"{ingest['profiled_overall_per_s']:,.0f} events/s profiled",
            flush=True,
        )

    document = {
        "machine": {
            **machine_facts(_PACKAGES),
            "load_average_at_start": load_at_start,
            "busy_cores_before_start": round(other_load, 2),
        },
        "config": {
            "git": revision,
            "quick": args.quick,
            "sizes": list(args.sizes),
            "bucket_rows": list(args.bucket_rows),
            "reference_rows": args.reference_rows,
            "features": len(FEATURES),
            "shifted_features": list(SHIFTED),
            "orchard_repeats": args.orchard_repeats,
            "evidently_repeats": args.evidently_repeats,
            "ingest": {
                "clients": args.clients,
                "batch": args.batch,
                "duration_s": args.ingest_duration,
                "warmup_s": args.ingest_warmup,
            },
        },
        "drift": drift,
        "ingest": ingest,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "evaluation.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    written = write_report(document, args.out_dir)
    print(f"== wrote {json_path}, " + ", ".join(str(p) for p in written))
    return 0


def measure_size(rows: int, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Both sides at one window size: Orchard for each bucket size, then Evidently."""
    orchard = []
    for bucket_rows in args.bucket_rows:
        database = work_dir / f"drift-{rows}-{bucket_rows}.db"
        for leftover in work_dir.glob(f"{database.name}*"):
            leftover.unlink()
        url = f"sqlite:///{database}"
        common = ["--rows", str(rows), "--reference-rows", str(args.reference_rows)]
        prepared = side(["prepare", "--db", url, "--bucket-rows", str(bucket_rows), *common])
        verdict = side(["orchard", "--db", url, "--repeats", str(args.orchard_repeats), *common])
        print(
            f"== {rows:>9,} rows, {prepared['buckets']:>5} buckets: Orchard verdict "
            f"{verdict['seconds'] * 1000:8.1f} ms, peak {verdict['peak_rss_mib']:6.0f} MiB "
            f"(profiles built at {prepared['build_rows_per_s']:,.0f} rows/s)",
            flush=True,
        )
        orchard.append({"bucket_rows": bucket_rows, "prepare": prepared, "verdict": verdict})
    evidently = side(
        [
            "evidently",
            "--rows",
            str(rows),
            "--reference-rows",
            str(args.reference_rows),
            "--repeats",
            str(args.evidently_repeats),
        ]
    )
    print(
        f"== {rows:>9,} rows: Evidently {evidently['seconds']:8.2f} s, "
        f"peak {evidently['peak_rss_mib']:6.0f} MiB",
        flush=True,
    )
    return {"rows": rows, "orchard": orchard, "evidently": evidently}


def side(arguments: list[str]) -> dict[str, Any]:
    """Run ``drift_sides.py`` in a fresh process and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, str(SIDES), *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"drift_sides.py {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", type=_int_list, default=[100_000, 1_000_000], help="current window rows"
    )
    parser.add_argument(
        "--bucket-rows",
        type=_int_list,
        default=[1_000, 10_000],
        help="rows per stored 60 s bucket; the first is the headline (default: 1000,10000)",
    )
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--orchard-repeats", type=int, default=5, help="reported as the median")
    parser.add_argument("--evidently-repeats", type=int, default=3, help="reported as the median")
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingest connections")
    parser.add_argument("--batch", type=int, default=500, help="events per ingest request")
    parser.add_argument(
        "--ingest-duration",
        type=float,
        default=float(os.environ.get("BENCH_DURATION") or 10),
        help="seconds of ingest load (default: $BENCH_DURATION, else 10)",
    )
    parser.add_argument("--ingest-warmup", type=float, default=2.0)
    parser.add_argument("--no-ingest", dest="ingest", action="store_false")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="seconds to wait at most for other work on the machine to stop before measuring",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and a 2 s ingest: a smoke run"
    )
    add_folder_options(parser, ROOT)
    return parser


if __name__ == "__main__":
    run_timed(main)
