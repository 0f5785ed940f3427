"""Production data out: labeled predictions for a model and window, for retraining."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Query
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import StreamingResponse

from orchard_core.errors import InvalidInput
from orchard_evaluation.db import Database
from orchard_evaluation.deps import DatabaseDep
from orchard_evaluation.rows import RowQuery, flat_row, iter_rows

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["exports"])
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@router.get("/exports/{model}")
async def export_dataset(
    model: str,
    database: DatabaseDep,
    version: str | None = None,
    since: Annotated[float | None, Query(description="Unix seconds, inclusive.")] = None,
    until: Annotated[float | None, Query(description="Unix seconds, exclusive.")] = None,
    format: Literal["jsonl", "parquet"] = "jsonl",
    labeled_only: bool = True,
) -> StreamingResponse:
    """Stream a model's production rows (inputs, outputs, label, value) as JSONL or Parquet."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput("'until' must be after 'since'")
    spec = RowQuery(model, version, since, until, labeled_only=labeled_only)
    # Header values are latin-1 and a quote would end the name: keep it to safe characters.
    stem = _SAFE.sub("_", f"{model}-{version or 'all'}")
    headers = {"content-disposition": f'attachment; filename="{stem}.{format}"'}
    if format == "jsonl":
        return StreamingResponse(
            iterate_in_threadpool(_jsonl(database, spec)),
            media_type="application/x-ndjson",
            headers=headers,
        )
    return StreamingResponse(
        _parquet(database, spec), media_type="application/vnd.apache.parquet", headers=headers
    )


def _jsonl(database: Database, spec: RowQuery) -> Iterator[bytes]:
    for page in iter_rows(database, spec):
        yield b"".join(orjson.dumps(flat_row(row)) + b"\n" for row in page)


async def _parquet(database: Database, spec: RowQuery) -> AsyncIterator[bytes]:
    # Parquet's footer comes last, so the file is written (row group per page, spilled to
    # disk past 32 MiB) before it is streamed; memory stays bounded by a page.
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as spool:
        await _write_parquet(database, spec, spool)
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk


async def _write_parquet(database: Database, spec: RowQuery, sink: Any) -> None:
    def write() -> None:
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        for page in iter_rows(database, spec):
            table = pa.Table.from_pylist([flat_row(r) for r in page], schema=schema)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(sink, schema)
            writer.write_table(table)
        if writer is None:  # no rows: still a valid, empty file with the fixed columns
            empty = pa.table({"request_id": pa.array([], pa.string())})
            pq.write_table(empty, sink)
        else:
            writer.close()

    await run_in_threadpool(write)
