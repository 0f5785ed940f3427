"""Evidently HTML reports of a model version's traffic over a time window.

Evaluation keeps no training data, only each version's reference profile, so a report's
reference data is *resampled from the profile*: each column on its own (marginals only — the
joint distribution is not kept), numeric columns by inverse-CDF sampling of their KLL sketch
(exact value counts when the profile has them; quantiles for v1 profiles), categorical columns
from their value counts, with a fixed seed. The current data are the window's stored rows
(inputs, and the outputs the reference profiles), the newest :attr:`ReportLimits.current_rows`
of them. Every report says so: in its file name, in a banner atop the HTML and in the API.

Reports are made on demand (``POST /v1/reports``) and by :func:`report_periodically`, for each
version with traffic in the last interval. Report files are kept until someone deletes them.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool

from orchard_core.errors import InvalidInput, NotFound, OrchardError
from orchard_core.profiles import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    category_key,
    sketch_quantiles,
)
from orchard_evaluation.db import Database
from orchard_evaluation.references import ReferenceStore
from orchard_evaluation.report_store import (
    REFERENCE_NOTE,
    ReportRow,
    ReportStore,
    RowCounts,
    Trigger,
)
from orchard_evaluation.rows import RowQuery, iter_rows
from orchard_evaluation.windows import WindowStore

__all__ = [
    "NothingToReport",
    "ReportFailed",
    "ReportLimits",
    "Reporter",
    "reference_frame",
    "report_active_versions",
    "report_periodically",
]

_log = logging.getLogger("orchard.evaluation.reports")
SEED: Final = 20_240_601
_evidently_lock = threading.Lock()


class NothingToReport(InvalidInput):
    """The window holds no stored rows of the version (400)."""


class ReportFailed(OrchardError):
    """Evidently could not make the report, or its file could not be written (500)."""


@dataclass(frozen=True)
class ReportLimits:
    """How many rows a report reads: the resampled reference and the newest current rows."""

    reference_rows: int = 20_000
    current_rows: int = 50_000


@dataclass(frozen=True)
class _Columns:
    """The report's columns: frame name -> (profile, where current rows keep it, its name)."""

    profiles: dict[str, tuple[ColumnProfile, str, str]]

    @classmethod
    def of(cls, profile: ReferenceProfile) -> _Columns:
        found: dict[str, tuple[ColumnProfile, str, str]] = {
            name: (column, "inputs", name) for name, column in profile.features.items()
        }
        for name, column in profile.outputs.items():
            # As in exports: an output named like an input would hide it.
            found[name if name not in found else f"output.{name}"] = (column, "outputs", name)
        return cls(found)

    def kinds(self, names: list[str]) -> tuple[list[str], list[str]]:
        numeric = [n for n in names if isinstance(self.profiles[n][0], NumericProfile)]
        return numeric, [n for n in names if n not in numeric]


def reference_frame(profile: ReferenceProfile, n_rows: int, seed: int = SEED) -> pd.DataFrame:
    """``n_rows`` rows drawn column by column from ``profile`` (marginals only, fixed seed)."""
    rng = np.random.default_rng(seed)
    columns = _Columns.of(profile)
    return pd.DataFrame(
        {name: _sample(column, n_rows, rng) for name, (column, _, _) in columns.profiles.items()}
    )


def _levels(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n`` stratified uniform levels, shuffled: the inverse CDF at them follows the
    distribution more closely than independent draws do."""
    return rng.permutation((np.arange(n) + rng.random(n)) / n)


def _draw(counts: NDArray[np.float64], levels: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices into ``counts`` at ``levels`` of their cumulative share (inverse CDF)."""
    cumulative = np.cumsum(counts) / counts.sum()
    return np.minimum(np.searchsorted(cumulative, levels, side="right"), len(counts) - 1)


def _sample(column: ColumnProfile, n: int, rng: np.random.Generator) -> Any:
    total = column.count + column.missing
    missing = rng.random(n) < (column.missing / total if total else 1.0)
    if isinstance(column, CategoricalProfile):
        values = list(column.value_counts)
        counts = np.asarray(list(column.value_counts.values()), dtype=np.float64)
        if not values or counts.sum() <= 0:
            return pd.Series([None] * n, dtype=object)
        drawn = np.asarray(values, dtype=object)[_draw(counts, _levels(n, rng))]
        drawn[missing] = None
        return pd.Series(drawn, dtype=object)
    numbers = _sample_numeric(column, n, rng)
    numbers[missing] = np.nan
    return numbers


def _sample_numeric(column: NumericProfile, n: int, rng: np.random.Generator) -> NDArray[Any]:
    if column.count == 0:
        return np.full(n, np.nan)
    levels = _levels(n, rng)
    if column.distinct:  # exact counts: draw values with their frequencies
        values = np.asarray(list(column.distinct), dtype=np.float64)
        counts = np.asarray(list(column.distinct.values()), dtype=np.float64)
        return values[_draw(counts, levels)]
    if column.sketch is not None:
        return np.asarray(sketch_quantiles(column.sketch, levels.tolist()), dtype=np.float64)
    # A v1 profile: interpolate between its quantiles, its minimum and its maximum.
    points = sorted((float(level), value) for level, value in column.quantiles.items())
    if column.min is not None:
        points.insert(0, (0.0, column.min))
    if column.max is not None:
        points.append((1.0, column.max))
    if not points:
        return np.full(n, column.mean if column.mean is not None else np.nan)
    xs, ys = zip(*points, strict=True)
    return np.asarray(np.interp(levels, np.asarray(xs), np.asarray(ys)), dtype=np.float64)


def _current_frame(
    database: Database,
    columns: _Columns,
    query: RowQuery,
    cap: int,
) -> tuple[pd.DataFrame, int]:
    """The newest ``cap`` rows of the window as report columns, and the window's row count."""
    kept: deque[dict[str, Any]] = deque(maxlen=cap)
    seen = 0
    for page in iter_rows(database, query):
        seen += len(page)
        kept.extend(page)
    data: dict[str, Any] = {}
    for name, (column, part, source) in columns.profiles.items():
        raw = [_scalar(row[part].get(source)) for row in kept]
        if isinstance(column, NumericProfile):
            data[name] = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").astype(
                np.float64
            )
        else:
            data[name] = pd.Series([category_key(v) for v in raw], dtype=object)
    return pd.DataFrame(data), seen


def _scalar(value: Any) -> Any:
    # A tensor column gives each row a list; it has no single value to compare.
    return None if isinstance(value, list | dict) else value


def _evidently_html(
    current: pd.DataFrame, reference: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> str:
    with _evidently_lock, warnings.catch_warnings():
        # Evidently 0.7 trips deprecations in its own and its dependencies' code (numpy.core,
        # litestar, pandas); under `-W error` (the tests) they would stop the import or the run.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        return str(snapshot.get_html_str(as_iframe=False))


def _stamp(when: float | None) -> str:
    if when is None:
        return "open"
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _with_banner(page: str, title: str, lines: list[str]) -> str:
    """Evidently's page with a title and a banner saying what was compared to what."""
    head = f"<title>{html.escape(title)}</title>" + "".join(
        f'<meta name="orchard-{i}" content="{html.escape(line)}">' for i, line in enumerate(lines)
    )
    banner = (
        '<div style="font-family:sans-serif;padding:12px 16px;background:#fff8e1;'
        'border-bottom:1px solid #e0c36c">'
        f"<h2 style='margin:0 0 6px'>{html.escape(title)}</h2>"
        + "".join(f"<div>{html.escape(line)}</div>" for line in lines)
        + "</div>"
    )
    page = page.replace("<head>", "<head>" + head, 1)
    return page.replace("<body>", "<body>" + banner, 1)


class Reporter:
    """Makes reports of a model version over a window and records them."""

    def __init__(
        self,
        database: Database,
        references: ReferenceStore,
        reports_dir: str | Path,
        limits: ReportLimits | None = None,
    ) -> None:
        self._db = database
        self._references = references
        self._dir = Path(reports_dir)
        self._limits = limits or ReportLimits()
        self.store = ReportStore(database)

    def generate(
        self,
        model: str,
        version: str,
        since: float | None = None,
        until: float | None = None,
        trigger: Trigger = "on_demand",
    ) -> ReportRow:
        """Make, write and record a report; a failure of ours is recorded as ``failed``.

        Raises:
            NotFound: the version has no reference profile.
            NothingToReport: the window holds no rows of the version.
            InvalidInput: ``since`` is not before ``until``.
            ReportFailed: Evidently or the file system failed (recorded as ``failed``).
        """
        if since is not None and until is not None and since >= until:
            raise InvalidInput("since must be before until")
        reference = self._references.get(model, version)
        if reference is None:
            raise NotFound(
                f"no reference profile for {model} version {version}: a report needs one "
                "(PUT /v1/profiles/{model}/{version}, or register it in MLflow)"
            )
        counts = RowCounts()
        try:
            return self._make(reference.profile, model, version, since, until, trigger, counts)
        except (NotFound, InvalidInput):
            raise
        except Exception as exc:
            _log.exception("report of %s version %s failed", model, version)
            error = f"{type(exc).__name__}: {exc}"
            self.store.add(model, version, since, until, trigger, error=error, counts=counts)
            raise ReportFailed(f"the report of {model} version {version} failed: {error}") from exc

    def _make(
        self,
        profile: ReferenceProfile,
        model: str,
        version: str,
        since: float | None,
        until: float | None,
        trigger: Trigger,
        counts: RowCounts,
    ) -> ReportRow:
        columns = _Columns.of(profile)
        query = RowQuery(model, version, since, until)
        current, seen = _current_frame(self._db, columns, query, self._limits.current_rows)
        counts.current, counts.window = len(current), seen
        if seen == 0:
            raise NothingToReport(
                f"nothing to report: no stored predictions of {model} version {version} "
                f"between {_stamp(since)} and {_stamp(until)}"
            )
        # A column the window never carries cannot be compared; leave it out.
        names = [n for n in columns.profiles if current[n].notna().any()]
        if not names:
            raise NothingToReport(
                f"nothing to report: the window's rows carry none of the profiled columns "
                f"({', '.join(columns.profiles)})"
            )
        n_reference = max(1, min(profile.n_rows, self._limits.reference_rows))
        reference = reference_frame(profile, n_reference)[names]
        counts.reference = n_reference
        numeric, categorical = columns.kinds(names)
        page = _evidently_html(current[names], reference, numeric, categorical)
        capped = seen > len(current)
        title = f"{model} version {version}: data drift, {_stamp(since)} to {_stamp(until)}"
        lines = [
            f"Reference: {n_reference} rows {REFERENCE_NOTE}; correlations between "
            "columns are not kept.",
            f"Current: {'the newest ' if capped else 'all '}{len(current)} of {seen} stored "
            "rows in the window.",
            f"Columns left out (no values in the window): "
            f"{', '.join(sorted(set(columns.profiles) - set(names))) or 'none'}.",
        ]
        page = _with_banner(page, title, lines)
        folder = self._dir / _safe(model) / _safe(version)
        folder.mkdir(parents=True, exist_ok=True)
        name = (
            f"{_safe(model)}_v{_safe(version)}_{_stamp(since)}_{_stamp(until)}_"
            f"{secrets.token_hex(4)}_reference-resampled-from-profile.html"
        )
        path = folder / name
        data = page.encode("utf-8")
        path.write_bytes(data)
        return self.store.add(
            model,
            version,
            since,
            until,
            trigger,
            path=str(path),
            size_bytes=len(data),
            counts=counts,
        )


def report_active_versions(
    reporter: Reporter, windows: WindowStore, since: float, until: float
) -> list[ReportRow]:
    """One scheduled pass: a report over ``[since, until)`` per version with window profiles
    there. A failure is recorded and logged, and the pass goes on; an empty window is skipped.
    """
    active = windows.active_versions(since, until)
    made: list[ReportRow] = []
    for model, version in active:
        try:
            made.append(reporter.generate(model, version, since, until, "scheduled"))
        except ReportFailed:
            pass  # recorded and logged by generate
        except NothingToReport as exc:
            _log.info("no scheduled report of %s version %s: %s", model, version, exc)
        except Exception as exc:  # e.g. the reference went missing: record it, go on
            _log.exception("scheduled report of %s version %s failed", model, version)
            reporter.store.add(
                model, version, since, until, "scheduled", error=f"{type(exc).__name__}: {exc}"
            )
    return made


async def report_periodically(reporter: Reporter, windows: WindowStore, interval_s: float) -> None:
    """Every ``interval_s`` (0: never), report each version active in the last interval."""
    if interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        until = time.time()
        try:
            made = await run_in_threadpool(
                report_active_versions, reporter, windows, until - interval_s, until
            )
            _log.info("scheduled reports: %d made", len(made))
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("scheduled reports failed; trying again in %.0f s", interval_s)
