"""Batch prediction: rows of ``{column: value}`` to OIP v2 requests and back, in chunks.

Used by the synchronous ``POST /v1/models/{m}/batch`` and by async batch jobs. A row maps each
column to a scalar (bool, integer, number, string) or to a list of them; a batch becomes one
tensor per column, shape ``[n]`` or ``[n, k]``. Outputs of shape ``[n, ...]`` come back as one
dict per row. JSONL and CSV files are read and written in :mod:`orchard_gateway.batch_io`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from orchard_core.errors import (
    InvalidInput,
    ModelNotFound,
    OrchardError,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamError,
    status_for,
)
from orchard_core.oip import decode_infer_response, parse_json
from orchard_gateway.predictor import Predictor

__all__ = [
    "BatchMetrics",
    "BatchRequest",
    "ChunkOutcome",
    "RowChecker",
    "chunk_bounds",
    "parse_batch_request",
    "predict_chunk",
    "predict_rows",
    "rows_to_infer_request",
    "split_outputs",
]

Row = dict[str, Any]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_DATATYPE: Final = {"bool": "BOOL", "int": "INT64", "float": "FP64", "str": "BYTES"}
# Answers worth trying the same chunk again for: the backend was unreachable or overloaded.
_RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})
_MAX_ERROR_CHARS: Final = 500


class BatchMetrics:
    """Rows predicted through batch requests and jobs; batch jobs by status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "orchard_gateway_batch_rows",
            "Rows predicted through batch requests and batch jobs, by model and outcome"
            " (ok: the row has outputs; error: its chunk failed).",
            ["model", "outcome"],
            registry=registry,
        )
        self.jobs = Gauge(
            "orchard_gateway_jobs",
            "Batch jobs this gateway knows, by status (queued, running, succeeded, failed,"
            " cancelled).",
            ["status"],
            registry=registry,
        )

    def job_moved(self, old: str | None, new: str) -> None:
        """Record a job entering status ``new`` (from ``old``; None: a job newly known)."""
        if old is not None:
            self.jobs.labels(old).dec()
        self.jobs.labels(new).inc()

    def counted(self, model: str, ok: int, failed: int) -> None:
        """Record one chunk's rows."""
        if ok:
            self.rows.labels(model, "ok").inc(ok)
        if failed:
            self.rows.labels(model, "error").inc(failed)


# --- rows to tensors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ColumnType:
    kind: str  # bool, int, float, str
    length: int | None  # None: a scalar per row; k: a list of k values per row


def _scalar_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool):
        return "an integer outside the INT64 range"
    return f"a {type(value).__name__}"


def _merge_kind(a: str, b: str) -> str | None:
    if a == b:
        return a
    if {a, b} == {"int", "float"}:
        return "float"
    return None


def _value_type(where: str, value: Any) -> _ColumnType:
    if isinstance(value, list):
        if not value:
            raise InvalidInput(f"{where}: is an empty list")
        kind: str | None = None
        for item in value:
            item_kind = _scalar_kind(item)
            if item_kind is None:
                raise InvalidInput(f"{where}: list holds {_describe(item)}; expected scalars")
            merged = item_kind if kind is None else _merge_kind(kind, item_kind)
            if merged is None:
                raise InvalidInput(f"{where}: list mixes {kind} and {item_kind} values")
            kind = merged
        assert kind is not None
        return _ColumnType(kind, len(value))
    kind = _scalar_kind(value)
    if kind is None:
        raise InvalidInput(
            f"{where}: is {_describe(value)}; expected a bool, number, string or list of them"
        )
    return _ColumnType(kind, None)


class RowChecker:
    """Checks rows one by one: the same columns in each, each column of one type and length."""

    def __init__(self) -> None:
        self.columns: dict[str, _ColumnType] = {}

    def check(self, row: Any, where: str) -> None:
        """Check one row (``where`` names it in errors, e.g. ``"row 3"`` or ``"line 4"``).

        Raises:
            InvalidInput: not an object, missing or extra columns, nulls, mixed types,
                lists of another length than before.
        """
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: must be a JSON object of {{column: value}}")
        if not row:
            raise InvalidInput(f"{where}: has no columns")
        if not self.columns:
            self.columns = {
                name: _value_type(f"{where}, column '{name}'", v) for name, v in row.items()
            }
            return
        if row.keys() != self.columns.keys():
            missing = sorted(self.columns.keys() - row.keys())
            extra = sorted(row.keys() - self.columns.keys())
            parts = [f"missing {missing}"] if missing else []
            parts += [f"unexpected {extra}"] if extra else []
            raise InvalidInput(f"{where}: columns differ from the first row's ({', '.join(parts)})")
        for name, value in row.items():
            self._check_value(f"{where}, column '{name}'", name, value)

    def _check_value(self, where: str, name: str, value: Any) -> None:
        known = self.columns[name]
        seen = _value_type(where, value)
        if seen.length != known.length:

            def shape(t: _ColumnType) -> str:
                return "a scalar" if t.length is None else f"a list of {t.length}"

            raise InvalidInput(f"{where}: is {shape(seen)}, earlier rows have {shape(known)}")
        merged = _merge_kind(known.kind, seen.kind)
        if merged is None:
            raise InvalidInput(f"{where}: is {seen.kind}, earlier rows have {known.kind}")
        if merged != known.kind:
            self.columns[name] = _ColumnType(merged, known.length)

    @property
    def datatypes(self) -> dict[str, str]:
        """Each column's OIP datatype over all rows checked so far."""
        return {name: _DATATYPE[column.kind] for name, column in self.columns.items()}


def rows_to_infer_request(
    rows: Sequence[Mapping[str, Any]],
    request_id: str,
    *,
    first_row: int = 0,
    datatypes: Mapping[str, str] | None = None,
) -> bytes:
    """An OIP v2 request body with one tensor per column of ``rows``.

    Args:
        rows: at least one row; every row has the same columns.
        request_id: the request's ``id``.
        first_row: index of ``rows[0]`` in the whole batch (for error messages).
        datatypes: each column's datatype over the whole batch (:attr:`RowChecker.datatypes`),
            so that a column of numbers is FP64 in every chunk, not INT64 in a chunk that
            happens to hold only integers.

    Raises:
        InvalidInput: naming the row and column that does not fit.
    """
    if not rows:
        raise InvalidInput("'rows' must hold at least one row")
    checker = RowChecker()
    for index, row in enumerate(rows):
        checker.check(row, f"row {first_row + index}")
    n = len(rows)
    inputs = []
    for name, column in checker.columns.items():
        if datatypes is not None and datatypes.get(name) == "FP64" and column.kind == "int":
            column = _ColumnType("float", column.length)
        if column.length is None:
            data: list[Any] = [row[name] for row in rows]
            shape = [n]
        else:
            data = [item for row in rows for item in row[name]]
            shape = [n, column.length]
        if column.kind == "float":
            data = [float(x) for x in data]
        inputs.append(
            {"name": name, "shape": shape, "datatype": _DATATYPE[column.kind], "data": data}
        )
    return orjson.dumps({"id": request_id, "inputs": inputs})


def split_outputs(response_body: bytes, n: int) -> list[Row]:
    """The backend's output tensors (shape ``[n, ...]``) as one ``{output: value}`` per row.

    Raises:
        UpstreamError: the answer is not an OIP v2 response or an output is not ``[n, ...]``.
    """
    try:
        response = decode_infer_response(response_body)
    except InvalidInput as exc:
        raise UpstreamError(f"the backend's answer is not an OIP v2 response: {exc}") from None
    rows: list[Row] = [{} for _ in range(n)]
    for output in response.outputs:
        if not output.shape or output.shape[0] != n:
            raise UpstreamError(
                f"the backend's output '{output.name}' has shape {list(output.shape)};"
                f" expected [{n}, ...] for {n} rows"
            )
        values = output.data.tolist()
        for row, value in zip(rows, values, strict=True):
            row[output.name] = value
    return rows


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk of ``size`` rows (the last may be shorter)."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


# --- one chunk through the predictor ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """How one chunk went: per-row outputs, or an error for all its rows."""

    status: int
    version: str | None
    results: list[Row] | None
    error: str | None = None
    retryable: bool = False  # the backend was unreachable or overloaded; try again later

    @property
    def ok(self) -> bool:
        return self.results is not None


def _error_message(status: int, body: bytes) -> str:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message: str = payload["error"]
    else:
        message = body.decode("utf-8", "replace").strip() or "no message"
    return f"backend answered {status}: {message[:_MAX_ERROR_CHARS]}"


async def predict_chunk(
    predictor: Predictor,
    model: str,
    rows: Sequence[Row],
    *,
    request_id: str,
    first_row: int = 0,
    datatypes: Mapping[str, str] | None = None,
) -> ChunkOutcome:
    """Predict one chunk; a failure (an error answer, no answer) is the outcome, not raised.

    Raises:
        InvalidInput: the rows do not make a request (checked before anything is sent).
        ModelNotFound: the model is not routed (any more).
    """
    body = rows_to_infer_request(rows, request_id, first_row=first_row, datatypes=datatypes)
    try:
        prediction = await predictor.infer(model, body, request_id=request_id)
    except ModelNotFound:
        raise
    except OrchardError as exc:
        retryable = isinstance(exc, UpstreamError | ServiceUnavailable)
        return ChunkOutcome(status_for(exc), None, None, exc.message, retryable)
    status = prediction.status
    if status >= 400:
        return ChunkOutcome(
            status,
            prediction.version,
            None,
            _error_message(status, prediction.body),
            status in _RETRYABLE_STATUSES,
        )
    try:
        results = split_outputs(prediction.body, len(rows))
    except UpstreamError as exc:
        return ChunkOutcome(502, prediction.version, None, exc.message)
    return ChunkOutcome(status, prediction.version, results)


# --- synchronous batch requests ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """A validated ``POST /v1/models/{m}/batch`` body."""

    rows: list[Row]
    chunk_size: int
    datatypes: dict[str, str]


def parse_batch_request(body: bytes, *, max_rows: int, max_chunk_size: int) -> BatchRequest:
    """Validate ``{"rows": [...], "chunk_size"?: int}``.

    Raises:
        InvalidInput: malformed JSON, wrong shapes, a bad chunk size (400).
        PayloadTooLarge: more than ``max_rows`` rows (413).
    """
    payload = parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise InvalidInput('request body must be a JSON object {"rows": [{column: value}, ...]}')
    unknown = sorted(payload.keys() - {"rows", "chunk_size"})
    if unknown:
        raise InvalidInput(f"unknown fields {unknown}; expected 'rows' and 'chunk_size'")
    rows: list[Any] = payload["rows"]
    if not rows:
        raise InvalidInput("'rows' must hold at least one row")
    if len(rows) > max_rows:
        raise PayloadTooLarge(
            f"{len(rows)} rows is more than the gateway's limit of {max_rows} per batch request"
            " (ORCHARD_GATEWAY_BATCH_MAX_ROWS); submit a batch job (POST /v1/jobs) instead"
        )
    chunk_size = payload.get("chunk_size", max_chunk_size)
    if (
        not isinstance(chunk_size, int)
        or isinstance(chunk_size, bool)
        or not 1 <= chunk_size <= max_chunk_size
    ):
        raise InvalidInput(
            f"'chunk_size' must be an integer from 1 to {max_chunk_size}"
            " (ORCHARD_GATEWAY_BATCH_CHUNK_SIZE)"
        )
    checker = RowChecker()
    for index, row in enumerate(rows):
        checker.check(row, f"rows[{index}]")
    return BatchRequest(rows, chunk_size, checker.datatypes)


async def predict_rows(
    predictor: Predictor,
    model: str,
    batch: BatchRequest,
    *,
    request_id: str,
    metrics: BatchMetrics | None = None,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Predict every row in chunks (``concurrency`` at once); the batch endpoint's answer.

    A failing chunk is reported in its ``chunks`` entry (its rows' results are null) and
    does not fail the others.

    Raises:
        ModelNotFound: the model is not routed.
    """
    rows = batch.rows
    bounds = chunk_bounds(len(rows), batch.chunk_size)
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int, start: int, end: int) -> ChunkOutcome:
        async with slots:
            return await predict_chunk(
                predictor,
                model,
                rows[start:end],
                request_id=f"{request_id}-c{index}",
                first_row=start,
                datatypes=batch.datatypes,
            )

    outcomes = await asyncio.gather(*(one(i, s, e) for i, (s, e) in enumerate(bounds)))
    results: list[Row | None] = [None] * len(rows)
    chunks: list[dict[str, Any]] = []
    for index, ((start, end), outcome) in enumerate(zip(bounds, outcomes, strict=True)):
        entry: dict[str, Any] = {
            "index": index,
            "start": start,
            "end": end,
            "status": outcome.status,
            "version": outcome.version,
        }
        if outcome.results is not None:
            results[start:end] = outcome.results
        else:
            entry["error"] = outcome.error
        chunks.append(entry)
    succeeded = sum(1 for r in results if r is not None)
    if metrics is not None:
        metrics.counted(model, succeeded, len(rows) - succeeded)
    return {
        "model": model,
        "rows": len(rows),
        "succeeded": succeeded,
        "failed": len(rows) - succeeded,
        "chunks": chunks,
        "results": results,
    }
