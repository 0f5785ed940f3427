"""The two sides of the drift comparison, each run in a fresh process for honest memory.

``prepare`` (not timed as a verdict) profiles the reference and stores the current window's
rows as window profiles, ``bucket_rows`` rows per 60 s bucket, in a SQLite database through
the evaluation service's own tables, as its profiler would have. ``orchard`` then times what
``GET /v1/drift`` costs: read and merge the range's stored buckets (``merge_range``) and judge
them against the reference (``detect_drift``). ``evidently`` times
``Report([DataDriftPreset()]).run`` on the same raw rows. Each prints one JSON object::

    .venv/bin/python benchmarks/evaluation/drift_sides.py orchard --db sqlite:///x.db --rows N
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

# Run as a file: the repository root makes benchmarks.* importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.evaluation.data import CATEGORICAL, FEATURES, NUMERIC, columns, kinds

__all__ = ["evidently_side", "orchard_side", "prepare", "rss_mib"]

MODEL: Final = "bench-drift"
BUCKET_S: Final = 60
# The service's default rollup width: a range reads the hours inside it, minutes at its edges.
ROLLUP_S: Final = 3_600
REFERENCE_SEED: Final = 1
CURRENT_SEED: Final = 2


def rss_mib() -> float:
    """This process's resident memory now, MiB."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mib() -> float:
    """The most resident memory this process has had, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def version_of(rows: int) -> str:
    """The model version whose window holds ``rows`` rows (one version per window size)."""
    return f"rows-{rows}"


def prepare(db_url: str, rows: int, reference_rows: int, bucket_rows: int) -> dict[str, Any]:
    """Store the reference and the current window's buckets; return what building them cost."""
    from orchard_core.profiles import ReferenceProfile, WindowProfile, profile_columns
    from orchard_evaluation.db import Database
    from orchard_evaluation.references import ReferenceStore
    from orchard_evaluation.windows import WindowStore

    database = Database.open(db_url)
    # Stored the way the service's profiler stores them: each bucket and its hourly rollup.
    windows = WindowStore(database, BUCKET_S, ROLLUP_S)
    version = version_of(rows)
    started = time.perf_counter()
    reference = ReferenceProfile(
        n_rows=reference_rows,
        features=profile_columns(
            columns(reference_rows, REFERENCE_SEED, shifted=False),
            kinds(),
        ),
    )
    reference_s = time.perf_counter() - started
    ReferenceStore(database).put(MODEL, version, reference.to_dict())
    current = columns(rows, CURRENT_SEED, shifted=True)
    build_s = store_s = 0.0
    stored_bytes = 0
    for index, start in enumerate(range(0, rows, bucket_rows)):
        chunk = {name: values[start : start + bucket_rows] for name, values in current.items()}
        begun = time.perf_counter()
        blob = WindowProfile.build(reference, chunk).to_bytes()
        built = time.perf_counter()
        with database.session() as session, session.begin():
            window = WindowProfile.from_bytes(blob)
            windows.add(session, MODEL, version, index * BUCKET_S, window, time.time())
        build_s += built - begun
        store_s += time.perf_counter() - built
        stored_bytes += len(blob)
    database.close()
    buckets = -(-rows // bucket_rows)
    return {
        "rows": rows,
        "buckets": buckets,
        "bucket_rows": bucket_rows,
        "reference_profile_s": reference_s,
        "build_s": build_s,
        "store_s": store_s,
        "build_rows_per_s": rows / build_s if build_s else None,
        "stored_bytes": stored_bytes,
        "bytes_per_bucket": stored_bytes / buckets,
    }


def orchard_side(db_url: str, rows: int, repeats: int) -> dict[str, Any]:
    """Time ``merge_range`` + ``detect_drift`` over the whole stored window, ``repeats`` times."""
    from orchard_evaluation.db import Database
    from orchard_evaluation.drift import detect_drift
    from orchard_evaluation.references import ReferenceStore
    from orchard_evaluation.windows import WindowStore

    database = Database.open(db_url, run_migrations=False)
    version = version_of(rows)
    reference = ReferenceStore(database).get(MODEL, version)
    if reference is None:
        raise SystemExit(f"no reference for {MODEL} {version} in {db_url}: run prepare first")
    rss_before = rss_mib()
    merge_times, detect_times = [], []
    verdict = None
    for _ in range(repeats):
        started = time.perf_counter()
        window = WindowStore(database, BUCKET_S, ROLLUP_S).merge_range(MODEL, version, None, None)
        merged = time.perf_counter()
        if window is None:
            raise SystemExit(f"no window profiles for {MODEL} {version}: run prepare first")
        verdict = detect_drift(reference.profile.features, window.features)
        detect_times.append(time.perf_counter() - merged)
        merge_times.append(merged - started)
        judged_rows = window.n_rows
    assert verdict is not None
    totals = [m + d for m, d in zip(merge_times, detect_times, strict=True)]
    return {
        "side": "orchard",
        "rows": rows,
        "judged_rows": judged_rows,
        "repeats": repeats,
        "seconds": statistics.median(totals),
        "first_s": totals[0],
        "merge_s": statistics.median(merge_times),
        "detect_s": statistics.median(detect_times),
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "columns": {
            c.column: {"method": c.method, "score": c.score, "drifted": c.drifted}
            for c in verdict.columns
        },
        "dataset_drifted": verdict.dataset_drifted,
    }


def evidently_side(rows: int, reference_rows: int, repeats: int) -> dict[str, Any]:
    """Time Evidently's ``DataDriftPreset`` on the raw reference and current rows."""
    import pandas as pd

    from orchard_evaluation.drift.evidently_check import evidently_drift

    reference = pd.DataFrame(columns(reference_rows, REFERENCE_SEED, shifted=False))
    current = pd.DataFrame(columns(rows, CURRENT_SEED, shifted=True))
    rss_before = rss_mib()
    times = []
    found = None
    for _ in range(repeats):
        started = time.perf_counter()
        found = evidently_drift(reference, current, NUMERIC, CATEGORICAL)
        times.append(time.perf_counter() - started)
    assert found is not None
    return {
        "side": "evidently",
        "rows": rows,
        "judged_rows": len(current),
        "repeats": repeats,
        "seconds": statistics.median(times),
        "first_s": times[0],
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "columns": {
            name: {k: found.columns[name][k] for k in ("method", "score", "drifted")}
            for name in FEATURES
            if name in found.columns
        },
        "dataset_drifted": found.dataset_drifted,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("side", choices=("prepare", "orchard", "evidently"))
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--db", help="SQLAlchemy URL of the window-profile database")
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--bucket-rows", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    sides: dict[str, Callable[[], dict[str, Any]]] = {
        "prepare": lambda: prepare(args.db, args.rows, args.reference_rows, args.bucket_rows),
        "orchard": lambda: orchard_side(args.db, args.rows, args.repeats),
        "evidently": lambda: evidently_side(args.rows, args.reference_rows, args.repeats),
    }
    print(json.dumps(sides[args.side]()))


if __name__ == "__main__":
    main()
