"""Async batch jobs run: queued, run chunk by chunk (``max_concurrent`` jobs at once), cancelled.

A job's files and their layout on disk are :mod:`orchard_gateway.job_store`'s; the runner keeps
every known job in memory, saves its state after each change, and resumes unfinished jobs at
start-up where their state says they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Final

import orjson

from orchard_core.errors import (
    Conflict,
    InvalidInput,
    ModelNotFound,
    NotFound,
    ServiceUnavailable,
)
from orchard_gateway.auth import ROLE_ADMIN, ApiKey, AuthDisabled
from orchard_gateway.batch import BatchMetrics, ChunkOutcome, Row, predict_chunk
from orchard_gateway.batch_io import count_rows, csv_header, csv_line, csv_record, read_rows
from orchard_gateway.job_store import (
    FINISHED,
    JOB_ID,
    Job,
    JobStatus,
    JobStore,
    too_large,
    utc_now,
)
from orchard_gateway.predictor import Predictor

__all__ = ["RETRY_DELAYS_S", "JobRunner"]

_log = logging.getLogger("orchard.gateway")

# Waits before trying a chunk again while the backend is unreachable; then the job fails.
RETRY_DELAYS_S: Final = (1.0, 2.0, 4.0, 8.0, 16.0)


def _cannot_store(exc: OSError) -> ServiceUnavailable:
    _log.error("cannot store a batch job upload: %s", exc)
    return ServiceUnavailable(
        f"the gateway cannot store batch job uploads now ({exc.strerror or exc}); retry later"
    )


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
                raise too_large(self._max_bytes)
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
                created=utc_now(),
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
        job = self._jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
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
        job.finished = utc_now()
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
        job.started = job.started or utc_now()
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
        rows = read_rows(path, job.format)
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
