"""Async batch jobs: uploads kept on disk, run chunk by chunk, resumed after a restart.

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

import asyncio
import contextlib
import enum
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from orchard_core.errors import (
    Conflict,
    InvalidInput,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from orchard_gateway.auth import ROLE_ADMIN, ApiKey, AuthDisabled
from orchard_gateway.batch import (
    BatchMetrics,
    ChunkOutcome,
    Row,
    RowChecker,
    csv_header,
    csv_line,
    csv_record,
    iter_csv_rows,
    iter_jsonl_rows,
    predict_chunk,
)
from orchard_gateway.predictor import Predictor

__all__ = ["FORMATS", "MEDIA_TYPES", "Job", "JobRunner", "JobStatus", "JobStore", "upload_format"]

_log = logging.getLogger("orchard.gateway")

FORMATS: Final = ("jsonl", "csv")
MEDIA_TYPES: Final = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
_JOB_ID: Final = re.compile(r"[0-9a-f]{32}")
_CONTENT_TYPES: Final = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
_BLOCK: Final = 64 * 1024
# Waits before trying a chunk again while the backend is unreachable; then the job fails.
RETRY_DELAYS_S: Final = (1.0, 2.0, 4.0, 8.0, 16.0)


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def _now() -> str:
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


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload is larger than the gateway's limit of {limit} bytes for batch jobs"
        " (ORCHARD_GATEWAY_JOBS_MAX_BYTES)"
    )


def _cannot_store(exc: OSError) -> ServiceUnavailable:
    _log.error("cannot store a batch job upload: %s", exc)
    return ServiceUnavailable(
        f"the gateway cannot store batch job uploads now ({exc.strerror or exc}); retry later"
    )


def _read_rows(path: Path, fmt: str) -> Generator[tuple[int, Row], None, None]:
    """``(line, row)`` for each row of an input file (parsed, not checked)."""
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as text:
            yield from iter_csv_rows(text)
    else:
        with path.open("rb") as lines:
            yield from iter_jsonl_rows(lines)


def count_rows(path: Path, fmt: str) -> tuple[int, dict[str, str]]:
    """Parse and check a whole input file; its number of rows and its columns' datatypes.

    Raises:
        InvalidInput: naming the first bad line.
    """
    checker = RowChecker()
    count = 0
    for line, row in _read_rows(path, fmt):
        checker.check(row, f"line {line}")
        count += 1
    return count, checker.datatypes


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
                        raise _too_large(limit)
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
            if not directory.is_dir() or not _JOB_ID.fullmatch(directory.name):
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
        now = _now()
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


class _JobFailed(Exception):
    """The job cannot go on; its message is the job's error."""


class JobRunner:
    """Accepts, runs (``max_concurrent`` at once), cancels and serves batch jobs."""

    def __init__(
        self,
        store: JobStore,
        predictor: Predictor,
        metrics: BatchMetrics,
        *,
        max_concurrent: int,
        max_bytes: int,
        chunk_size: int,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self.store = store
        self.retry_delays_s = retry_delays_s
        self._predictor = predictor
        self._metrics = metrics
        self._max_concurrent = max_concurrent
        self._max_bytes = max_bytes
        self._chunk_size = chunk_size
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # --- life -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the jobs on disk, queue the unfinished ones again, start the workers.

        Raises:
            OSError: the jobs directory cannot be read.
        """
        jobs = await asyncio.to_thread(self.store.load_all)
        for job in sorted(jobs, key=lambda j: j.created):
            if job.status is JobStatus.RUNNING:
                job.status = JobStatus.QUEUED  # interrupted by a stop: goes on where it was
                self.store.save(job)
            self._jobs[job.id] = job
            self._metrics.job_moved(None, job.status)
            if job.status is JobStatus.QUEUED:
                self._queue.put_nowait(job.id)
        resumed = self._queue.qsize()
        if resumed:
            _log.info("resuming %d batch job(s) from %s", resumed, self.store.root)
        self._workers = [
            asyncio.create_task(self._work(), name=f"batch-job-worker-{i}")
            for i in range(self._max_concurrent)
        ]

    async def stop(self) -> None:
        """Stop the workers; running jobs stop where they are and resume at the next start."""
        self._stopping = True
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    # --- the API ----------------------------------------------------------------------

    async def submit(
        self,
        model: str,
        fmt: str,
        stream: AsyncIterator[bytes],
        *,
        declared_size: str | None,
        key: ApiKey,
    ) -> Job:
        """Store, check and queue an upload (its model known to be routed).

        Raises:
            InvalidInput: a malformed file (naming the line), or no rows (400).
            PayloadTooLarge: over ``jobs_max_bytes`` (413).
            ServiceUnavailable: the upload cannot be stored (disk full, no permission) (503).
        """
        if declared_size is not None:
            try:
                declared = int(declared_size)
            except ValueError:
                raise InvalidInput(f"Content-Length {declared_size!r} is not a number") from None
            if declared > self._max_bytes:
                raise _too_large(self._max_bytes)
        job_id = uuid.uuid4().hex
        try:
            path = await self.store.receive(job_id, stream, self._max_bytes)
        except OSError as exc:
            raise _cannot_store(exc) from None
        try:
            rows, datatypes = await asyncio.to_thread(count_rows, path, fmt)
            if rows == 0:
                raise InvalidInput("the file holds no rows")
            job = Job(
                id=job_id,
                model=model,
                format=fmt,
                rows=rows,
                chunk_size=self._chunk_size,
                status=JobStatus.QUEUED,
                created=_now(),
                key_id=None if key is AuthDisabled else key.key_id,
                datatypes=datatypes,
            )
            self.store.accept(job)
        except OSError as exc:
            self.store.remove(job_id)
            raise _cannot_store(exc) from None
        except BaseException:
            self.store.remove(job_id)
            raise
        self._jobs[job_id] = job
        self._metrics.job_moved(None, job.status)
        self._queue.put_nowait(job_id)
        _log.info("batch job %s accepted: %d rows for model %s", job_id, rows, model)
        return job

    def get(self, job_id: str, key: ApiKey) -> Job:
        """A job the caller may see.

        Raises:
            NotFound: no such job, or another key's (404).
        """
        job = self._jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or not _may_see(key, job):
            raise NotFound(f"no batch job {job_id!r}")
        return job

    def visible(self, key: ApiKey, *, limit: int) -> list[Job]:
        """The jobs the caller may see, newest first."""
        visible = [job for job in self._jobs.values() if _may_see(key, job)]
        visible.sort(key=lambda j: j.created, reverse=True)
        return visible[:limit]

    def cancel(self, job_id: str, key: ApiKey) -> Job:
        """Cancel a queued or running job (again: no change).

        Raises:
            NotFound: no such job (404).
            Conflict: it has already succeeded or failed (409).
        """
        job = self.get(job_id, key)
        if job.status is JobStatus.CANCELLED:
            return job
        if job.status in FINISHED:
            raise Conflict(f"batch job {job_id} has already {job.status.value}")
        self._finish(job, JobStatus.CANCELLED)
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
        return job

    def results(self, job_id: str, fmt: str, key: ApiKey) -> Iterator[bytes]:
        """A finished job's results as JSONL or CSV (a failed or cancelled job's rows so far).

        Raises:
            NotFound: no such job (404).
            Conflict: the job has not finished (409).
        """
        job = self.get(job_id, key)
        if job.status not in FINISHED:
            raise Conflict(
                f"batch job {job_id} is {job.status.value}; its results can be downloaded"
                f" once it has finished ({job.rows_done} of {job.rows} rows done)"
            )
        if fmt == "csv":
            return self._csv_results(job)
        return self.store.result_blocks(job)

    def _csv_results(self, job: Job) -> Iterator[bytes]:
        columns: dict[str, None] = {}
        for line in self.store.result_lines(job):
            columns.update(dict.fromkeys(csv_record(orjson.loads(line))))
        header = csv_header(columns)
        yield csv_line(header, dict(zip(header, header, strict=True))).encode()
        for line in self.store.result_lines(job):
            yield csv_line(header, csv_record(orjson.loads(line))).encode()

    # --- running ----------------------------------------------------------------------

    def _move(self, job: Job, status: JobStatus) -> None:
        self._metrics.job_moved(job.status, status)
        job.status = status
        self.store.save(job)

    def _finish(self, job: Job, status: JobStatus, error: str | None = None) -> None:
        job.finished = _now()
        job.error = error
        self._move(job, status)

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                continue  # cancelled while it waited
            task = asyncio.create_task(self._run(job), name=f"batch-job-{job_id}")
            self._running[job_id] = task
            try:
                await task
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                # cancel() stopped the job and has recorded it
            except Exception:  # its state could not be saved (disk full?): keep serving others
                _log.exception("batch job %s stopped: its state could not be saved", job_id)
            finally:
                self._running.pop(job_id, None)

    async def _run(self, job: Job) -> None:
        job.started = job.started or _now()
        self._move(job, JobStatus.RUNNING)
        error: str | None
        try:
            await self._chunks(job)
        except _JobFailed as exc:
            _log.error("batch job %s failed: %s", job.id, exc)
            outcome, error = JobStatus.FAILED, str(exc)
        except Exception as exc:  # never leave a job running for ever on a bug of ours
            _log.exception("batch job %s failed unexpectedly", job.id)
            outcome, error = JobStatus.FAILED, f"internal error ({type(exc).__name__})"
        else:
            _log.info("batch job %s done (%d failed rows)", job.id, job.failed_rows)
            outcome, error = JobStatus.SUCCEEDED, None
        if job.status is JobStatus.RUNNING:  # not cancelled meanwhile
            self._finish(job, outcome, error)

    async def _chunks(self, job: Job) -> None:
        try:
            self.store.open_results(job)
        except OSError as exc:
            raise _JobFailed(f"the job's results file cannot be written: {exc}") from None
        path = self.store.input_path(job)
        if not path.exists():
            raise _JobFailed(f"the job's input file {path.name} is missing")
        rows = _read_rows(path, job.format)
        try:
            skip = job.chunks_done * job.chunk_size
            await asyncio.to_thread(_take, rows, skip)
            for index in range(job.chunks_done, job.chunks_total):
                start = index * job.chunk_size
                end = min(start + job.chunk_size, job.rows)
                chunk = _take(rows, end - start)
                if len(chunk) != end - start:
                    raise _JobFailed(f"the input file has fewer rows than the {job.rows} uploaded")
                outcome = await self._predict(job, index, start, chunk)
                if job.status is not JobStatus.RUNNING:
                    return
                self._record(job, index, start, outcome)
        except InvalidInput as exc:
            raise _JobFailed(f"the job's input file cannot be read: {exc.message}") from None
        finally:
            with contextlib.suppress(ValueError):  # still being read by a cancelled thread
                rows.close()

    async def _predict(self, job: Job, index: int, start: int, chunk: list[Row]) -> ChunkOutcome:
        delays = iter(self.retry_delays_s)
        tries = 0
        while True:
            tries += 1
            try:
                outcome = await predict_chunk(
                    self._predictor,
                    job.model,
                    chunk,
                    request_id=f"{job.id}-c{index}",
                    first_row=start,
                    datatypes=job.datatypes,
                )
            except InvalidInput as exc:
                return ChunkOutcome(400, None, None, exc.message)
            except ModelNotFound as exc:
                raise _JobFailed(exc.message) from None
            if outcome.ok or not outcome.retryable:
                return outcome
            delay = next(delays, None)
            if delay is None:
                raise _JobFailed(
                    f"rows {start}-{start + len(chunk) - 1} failed {tries} times, the backend"
                    f" unreachable: {outcome.error}"
                )
            _log.warning(
                "batch job %s: chunk %d failed (%s); trying again in %gs",
                job.id,
                index,
                outcome.error,
                delay,
            )
            await asyncio.sleep(delay)

    def _record(self, job: Job, index: int, start: int, outcome: ChunkOutcome) -> None:
        size = min(job.chunk_size, job.rows - start)
        if outcome.results is not None:
            lines = [{"row": start + i, **result} for i, result in enumerate(outcome.results)]
            failed = 0
        else:
            lines = [{"row": start + i, "error": outcome.error} for i in range(size)]
            failed = size
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        job.results_offset = self.store.append_results(job, data)
        job.chunks_done = index + 1
        job.failed_rows += failed
        self.store.save(job)
        self._metrics.counted(job.model, size - failed, failed)


def _take(rows: Iterator[tuple[int, Row]], count: int) -> list[Row]:
    taken: list[Row] = []
    if count <= 0:
        return taken
    for _, row in rows:
        taken.append(row)
        if len(taken) == count:
            break
    return taken


def _may_see(key: ApiKey, job: Job) -> bool:
    return ROLE_ADMIN in key.roles or job.key_id == key.key_id
