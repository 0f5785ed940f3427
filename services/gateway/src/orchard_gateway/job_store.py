"""Batch jobs on disk: uploads kept, state saved atomically, results appended, recovered at start.

Each job lives in ``jobs_dir/<id>/``:

- ``input.jsonl`` or ``input.csv``: the upload, validated whole before the job is accepted;
- ``state.json``: the job (:class:`Job`), replaced atomically after every change;
- ``results.jsonl``: one line per row, ``{"row": i, ...outputs}`` or ``{"row": i, "error"}``,
  appended chunk by chunk. The state records the chunks done and the file's size after
  them, so a restart cuts off a half-written chunk and goes on from the next one.

A job is accepted (202) only once its state file exists; a directory without one is an
upload that was never acknowledged and is removed at start-up. A job whose state or input
cannot be read is marked failed with the reason, never dropped.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from orchard_core.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "FINISHED",
    "FORMATS",
    "JOB_ID",
    "MEDIA_TYPES",
    "Job",
    "JobStatus",
    "JobStore",
    "too_large",
    "upload_format",
    "utc_now",
]

_log = logging.getLogger("orchard.gateway")

FORMATS: Final = ("jsonl", "csv")
MEDIA_TYPES: Final = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
JOB_ID: Final = re.compile(r"[0-9a-f]{32}")
_CONTENT_TYPES: Final = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
_BLOCK: Final = 64 * 1024


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(slots=True)
class Job:
    """One batch job, as kept in its ``state.json``."""

    id: str
    model: str
    format: str
    rows: int
    chunk_size: int
    status: JobStatus
    created: str
    key_id: str | None = None
    started: str | None = None
    finished: str | None = None
    chunks_done: int = 0
    results_offset: int = 0
    failed_rows: int = 0
    error: str | None = None
    datatypes: dict[str, str] | None = None  # each column's, over the whole file

    @property
    def chunks_total(self) -> int:
        return -(-self.rows // self.chunk_size)

    @property
    def rows_done(self) -> int:
        return min(self.chunks_done * self.chunk_size, self.rows)

    def view(self) -> dict[str, Any]:
        """The job as the API shows it."""
        return {
            "id": self.id,
            "model": self.model,
            "status": self.status.value,
            "format": self.format,
            "rows": self.rows,
            "rows_done": self.rows_done,
            "failed_rows": self.failed_rows,
            "chunk_size": self.chunk_size,
            "chunks_done": self.chunks_done,
            "chunks_total": self.chunks_total,
            "progress": self.rows_done / self.rows if self.rows else 0.0,
            "error": self.error,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }

    def to_json(self) -> bytes:
        """The state file's content."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        """Read a state file's content.

        Raises:
            ValueError: not a job's state.
        """
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in ("id", "model", "format", "rows", "chunk_size") if n not in raw)
        if missing:
            raise ValueError(f"missing {missing}")
        job = cls(**{k: v for k, v in raw.items() if k in names})
        job.status = JobStatus(job.status)
        if job.format not in FORMATS or job.chunk_size < 1 or job.rows < 0:
            raise ValueError("format, rows or chunk_size out of range")
        return job


def upload_format(requested: str | None, content_type: str | None) -> str:
    """The upload's format: ``?format=`` if given, else from its ``Content-Type``.

    Raises:
        InvalidInput: neither names JSONL or CSV.
    """
    if requested is not None:
        if requested not in FORMATS:
            raise InvalidInput(f"format must be one of {list(FORMATS)}, got {requested!r}")
        return requested
    media = (content_type or "").split(";")[0].strip().lower()
    found = _CONTENT_TYPES.get(media)
    if found is None:
        raise InvalidInput(
            "say the file's format with ?format=jsonl|csv or a Content-Type of text/csv or"
            f" application/x-ndjson (got {media or 'none'!r})"
        )
    return found


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload is larger than the gateway's limit of {limit} bytes for batch jobs"
        " (ORCHARD_GATEWAY_JOBS_MAX_BYTES)"
    )


class JobStore:
    """Jobs' files under one directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, job_id: str) -> Path:
        return self.root / job_id

    def input_path(self, job: Job) -> Path:
        return self.directory(job.id) / f"input.{job.format}"

    def results_path(self, job_id: str) -> Path:
        return self.directory(job_id) / "results.jsonl"

    def upload_path(self, job_id: str) -> Path:
        return self.directory(job_id) / "upload.part"

    def save(self, job: Job) -> None:
        """Replace the job's state file atomically."""
        path = self.directory(job.id) / "state.json"
        staging = path.with_name("state.json.tmp")
        staging.write_bytes(job.to_json())
        os.replace(staging, path)

    async def receive(self, job_id: str, stream: AsyncIterator[bytes], limit: int) -> Path:
        """Write an upload to ``upload.part``, refusing it (and removing it) past ``limit``.

        Raises:
            PayloadTooLarge: more than ``limit`` bytes.
        """
        directory = self.directory(job_id)
        directory.mkdir(parents=True)
        path = self.upload_path(job_id)
        try:
            received = 0
            with path.open("wb") as out:
                async for block in stream:
                    received += len(block)
                    if received > limit:
                        raise too_large(limit)
                    out.write(block)
        except BaseException:
            self.remove(job_id)
            raise
        return path

    def accept(self, job: Job) -> None:
        """Make an uploaded, checked file a job: its input in place, then its state."""
        os.replace(self.upload_path(job.id), self.input_path(job))
        self.save(job)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.directory(job_id), ignore_errors=True)

    def load_all(self) -> list[Job]:
        """Every job on disk; one whose state cannot be read comes back failed (and saved)."""
        jobs: list[Job] = []
        if (
            not self.root.exists()
        ):  # made by the first upload: a gateway with no jobs writes nothing
            return jobs
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir() or not JOB_ID.fullmatch(directory.name):
                continue
            state = directory / "state.json"
            if not state.exists():
                _log.warning("removing %s: an upload that was never accepted", directory)
                self.remove(directory.name)
                continue
            try:
                job = Job.from_json(state.read_bytes())
                if job.id != directory.name:
                    raise ValueError(f"it names job {job.id!r}")
            except (OSError, ValueError, TypeError) as exc:
                job = self._unreadable(directory, state, exc)
            jobs.append(job)
        return jobs

    def _unreadable(self, directory: Path, state: Path, exc: Exception) -> Job:
        _log.error("batch job %s: state file unreadable: %s", directory.name, exc)
        with contextlib.suppress(OSError):
            os.replace(state, state.with_name("state.json.unreadable"))
        now = utc_now()
        job = Job(
            id=directory.name,
            model="",
            format="jsonl",
            rows=0,
            chunk_size=1,
            status=JobStatus.FAILED,
            created=now,
            finished=now,
            error=f"the job's state file could not be read ({exc}); kept as state.json.unreadable",
        )
        self.save(job)
        return job

    def open_results(self, job: Job) -> int:
        """Cut the results file back to what the state records (a chunk half-written before a
        restart goes); its size.

        Raises:
            OSError: the file is shorter than recorded (it was damaged).
        """
        path = self.results_path(job.id)
        with path.open("ab") as out:
            size = out.tell()
            if size < job.results_offset:
                raise OSError(
                    f"results file has {size} bytes, fewer than the {job.results_offset} recorded"
                )
            out.truncate(job.results_offset)
        return job.results_offset

    def append_results(self, job: Job, lines: bytes) -> int:
        """Append a chunk's result lines at the recorded offset; the file's new size."""
        with self.results_path(job.id).open("r+b") as out:
            out.seek(job.results_offset)
            out.write(lines)
            out.truncate()
            return out.tell()

    def result_blocks(self, job: Job) -> Iterator[bytes]:
        """The results file up to the recorded offset, in blocks."""
        path = self.results_path(job.id)
        if not path.exists():
            return
        left = job.results_offset
        with path.open("rb") as results:
            while left > 0:
                block = results.read(min(_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def result_lines(self, job: Job) -> Iterator[bytes]:
        """The results file's lines, up to the recorded offset."""
        path = self.results_path(job.id)
        if not path.exists():
            return
        left = job.results_offset
        with path.open("rb") as results:
            for line in results:
                if left <= 0:
                    return
                yield line[:left]
                left -= len(line)
