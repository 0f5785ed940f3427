"""Payload logging and feedback: queued in memory and posted to evaluation in batches.

The hot path only calls :meth:`PredictionEventSink.offer`, which is synchronous, never blocks
and never raises: the event is sampled (``events.is_sampled``) and appended to a bounded
queue, or dropped and counted when the queue is full. A background task posts the queue to
``POST {evaluation_url}/v1/events`` as a JSON list, in batches of ``batch_size`` or every
``flush_interval_s``, whichever comes first. Evaluation may be down: predictions never wait
for it; batches are retried with exponential backoff and jitter on connection errors,
timeouts, 5xx and 429, then counted ``failed``.

Feedback (``{request_id, label?, value?, ts?}``, see ``api/feedback.py``) takes the same road
to ``POST {evaluation_url}/v1/feedback``: :class:`EvaluationSink` is the machinery, and
:class:`PredictionEventSink` and :class:`FeedbackSink` are its two flavours, each with its own
metrics (``orchard_gateway_events_total`` / ``orchard_gateway_feedback_total``). Feedback is
never sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from orchard_gateway.events import is_sampled
from orchard_gateway.settings import GatewaySettings

__all__ = [
    "EVENTS_PATH",
    "FEEDBACK_PATH",
    "EvaluationSink",
    "EvaluationSinks",
    "EventSinkMetrics",
    "FeedbackSink",
    "FeedbackSinkMetrics",
    "PredictionEventSink",
    "SinkMetrics",
]

_log = logging.getLogger("orchard.gateway.events")

EVENTS_PATH: Final = "/v1/events"
FEEDBACK_PATH: Final = "/v1/feedback"
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


class SinkMetrics:
    """An evaluation sink's metrics, registered on the gateway's registry.

    ``{prefix}_total{outcome}`` counts items (not batches): ``sent`` (evaluation accepted them),
    ``failed`` (evaluation refused them, or kept failing until the attempts ran out),
    ``dropped`` (queue full, or still queued when the sink closed) and, when the sink samples,
    ``sampled_out``. ``queue_depth_name`` (default ``{prefix}_queue_depth``) is the number of
    items waiting to be sent.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        prefix: str,
        *,
        what: str,
        queue_depth_name: str | None = None,
        sampling: bool = False,
    ) -> None:
        outcomes = "sent (accepted by evaluation), failed (refused, or evaluation unreachable"
        outcomes += " after all attempts), dropped (queue full or sink closed)"
        self.what = what
        self.items = Counter(
            prefix,
            f"{what.capitalize()}, by outcome: {outcomes}"
            + (", sampled_out." if sampling else "."),
            ["outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            queue_depth_name or f"{prefix}_queue_depth",
            f"{what.capitalize()} queued in the gateway, waiting to be sent to evaluation.",
            registry=registry,
        )
        # Label children bound once: .labels() takes a lock and hashes the labels.
        self.sent = self.items.labels("sent")
        self.failed = self.items.labels("failed")
        self.dropped = self.items.labels("dropped")
        self.sampled_out = self.items.labels("sampled_out") if sampling else None


class EventSinkMetrics(SinkMetrics):
    """``orchard_gateway_events_total{outcome}`` and ``orchard_gateway_event_queue_depth``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(
            registry,
            "orchard_gateway_events",
            what="prediction events",
            queue_depth_name="orchard_gateway_event_queue_depth",
            sampling=True,
        )
        self.events = self.items


class FeedbackSinkMetrics(SinkMetrics):
    """``orchard_gateway_feedback_total{outcome}`` and ``orchard_gateway_feedback_queue_depth``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "orchard_gateway_feedback", what="feedback items")


class _Retryable(Exception):
    """An attempt that may succeed later (connection error, timeout, 5xx, 429)."""


class _Refused(Exception):
    """An answer that retrying will not change (4xx other than 429)."""


class EvaluationSink:
    """A bounded in-memory queue of items for one evaluation endpoint, and the task that ships it.

    Use: ``sink.start()`` inside the running loop (app startup), ``sink.offer(item)`` per item,
    ``await sink.aclose(grace_s)`` at shutdown. The session is injected and stays the caller's
    to close (after ``aclose``). Items are posted to ``{evaluation_url}{path}`` as a JSON list.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        evaluation_url: str,
        path: str,
        metrics: SinkMetrics,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        sample_rate: float = 1.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or max_attempts < 1:
            raise ValueError("max_queue, batch_size and max_attempts must be at least 1")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be within 0..1")
        if sample_rate < 1.0 and metrics.sampled_out is None:
            raise ValueError(f"{metrics.what} must not be sampled: sample_rate must be 1")
        self._session = session
        self._url = evaluation_url.rstrip("/") + path
        self._metrics = metrics
        self._what = metrics.what
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._sample_rate = sample_rate
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._queue: deque[Mapping[str, Any]] = deque()
        self._inflight: list[Mapping[str, Any]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Read at scrape time: nothing to update on the hot path.
        metrics.queue_depth.set_function(self.queue_depth)

    @property
    def url(self) -> str:
        """Where batches are posted."""
        return self._url

    def queue_depth(self) -> int:
        """Items queued, not yet handed to a flush."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def offer(self, event: Mapping[str, Any]) -> bool:
        """Queue one item if it is sampled in and there is room; True when queued.

        Synchronous, never blocks, never raises.
        """
        try:
            sampled_out = self._metrics.sampled_out
            if sampled_out is not None and not is_sampled(
                str(event.get("request_id", "")), self._sample_rate
            ):
                sampled_out.inc()
                return False
            if self._closing or len(self._queue) >= self._max_queue:
                self._metrics.dropped.inc()
                return False
            self._queue.append(event)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
            return True
        except Exception:  # a broken event or metric must never fail a prediction
            _log.exception("%s: one not queued", self._what)
            return False

    def offer_all(self, items: Sequence[Mapping[str, Any]]) -> bool:
        """Queue all of ``items`` or, when the queue has no room for them all, none (they are
        counted dropped); True when queued. Not sampled. Synchronous, never blocks."""
        if self._closing or len(self._queue) + len(items) > self._max_queue:
            self._metrics.dropped.inc(len(items))
            return False
        self._queue.extend(items)
        if len(self._queue) >= self._batch_size:
            self._wake.set()
        return True

    def start(self) -> None:
        """Start the flushing task on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="orchard-gateway-events"
            )

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Stop accepting events, send what is queued within ``grace_s`` seconds, then drop
        (and count) whatever is left. Never raises."""
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=max(grace_s, 0.0))
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = len(self._queue) + len(self._inflight)
        self._queue.clear()
        self._inflight = []
        if left:
            self._metrics.dropped.inc(left)
            _log.warning("dropped %d %s at shutdown", left, self._what)

    async def _run(self) -> None:
        while True:
            try:
                if not self._closing and len(self._queue) < self._batch_size:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._flush_interval_s):
                            await self._wake.wait()
                if not self._queue:
                    if self._closing:
                        return
                    continue
                count = min(self._batch_size, len(self._queue))
                self._inflight = [self._queue.popleft() for _ in range(count)]
                await self._send(self._inflight)
                self._inflight = []
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop outlives any bug in one flush
                _log.exception("%s: flush failed", self._what)
                if self._inflight:
                    self._metrics.failed.inc(len(self._inflight))
                    self._inflight = []
                await asyncio.sleep(self._backoff_base_s)

    async def _send(self, batch: list[Mapping[str, Any]]) -> None:
        body = orjson.dumps(batch, option=orjson.OPT_SERIALIZE_NUMPY)
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._post(body)
            except _Retryable as exc:
                if attempt == self._max_attempts:
                    _log.warning(
                        "%d %s not sent after %d attempts: %s",
                        len(batch),
                        self._what,
                        attempt,
                        exc,
                    )
                    self._metrics.failed.inc(len(batch))
                    return
                cap = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(cap / 2, cap))  # noqa: S311 - jitter only
            except _Refused as exc:
                _log.error("evaluation refused %d %s: %s", len(batch), self._what, exc)
                self._metrics.failed.inc(len(batch))
                return
            else:
                self._metrics.sent.inc(len(batch))
                return

    async def _post(self, body: bytes) -> None:
        try:
            async with self._session.post(
                self._url, data=body, headers=_JSON_HEADERS, timeout=self._timeout
            ) as resp:
                if resp.status < 300:
                    await resp.read()
                    return
                detail = (await resp.read())[:200].decode(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {detail}")
        raise _Refused(f"HTTP {status}: {detail}")


class PredictionEventSink(EvaluationSink):
    """Prediction events, sampled, to ``POST {evaluation_url}/v1/events``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        evaluation_url: str,
        metrics: EventSinkMetrics,
        **options: Any,
    ) -> None:
        """``options``: the keyword arguments of :class:`EvaluationSink`."""
        super().__init__(session, evaluation_url, EVENTS_PATH, metrics, **options)


class FeedbackSink(EvaluationSink):
    """Feedback items (never sampled) to ``POST {evaluation_url}/v1/feedback``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        evaluation_url: str,
        metrics: FeedbackSinkMetrics,
        **options: Any,
    ) -> None:
        """``options``: the keyword arguments of :class:`EvaluationSink` but ``sample_rate``."""
        super().__init__(session, evaluation_url, FEEDBACK_PATH, metrics, **options)


def _safe_url(url: str) -> str:
    # For logs: no user, password, query or fragment, which may carry credentials.
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


class EvaluationSinks:
    """The gateway's two sinks to evaluation (events, feedback) and their own client session.

    Made with the app (metrics registered once), opened in its lifespan: :meth:`start` makes
    and starts both sinks when ``evaluation_url`` is set (else they stay ``None``: payload
    logging and feedback forwarding are off), :meth:`aclose` flushes them within the grace
    period, then closes the session.
    """

    def __init__(self, settings: GatewaySettings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self.event_metrics = EventSinkMetrics(registry)
        self.feedback_metrics = FeedbackSinkMetrics(registry)
        self.events: PredictionEventSink | None = None
        self.feedback: FeedbackSink | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Open the session and start both sinks (inside the running loop); logs where to."""
        settings = self._settings
        url = settings.evaluation_url
        if url is None:
            _log.info(
                "payload logging and feedback forwarding are off"
                " (ORCHARD_GATEWAY_EVALUATION_URL is not set)"
            )
            return
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession()
        options: dict[str, Any] = {
            "max_queue": settings.events_queue_size,
            "batch_size": settings.events_batch_size,
            "flush_interval_s": settings.events_flush_interval_s,
        }
        self.events = PredictionEventSink(
            self._session,
            url,
            self.event_metrics,
            sample_rate=settings.events_sample_rate,
            **options,
        )
        self.feedback = FeedbackSink(self._session, url, self.feedback_metrics, **options)
        self.events.start()
        self.feedback.start()
        _log.info(
            "payload logging is on: prediction events to %s%s (sample rate %g), feedback to"
            " %s%s; queue %d, batches of %d or every %gs",
            _safe_url(url),
            EVENTS_PATH,
            settings.events_sample_rate,
            _safe_url(url),
            FEEDBACK_PATH,
            settings.events_queue_size,
            settings.events_batch_size,
            settings.events_flush_interval_s,
        )

    async def aclose(self, grace_s: float) -> None:
        """Flush both sinks within ``grace_s`` seconds (the rest is dropped, counted), then
        close the session. Never raises."""
        sinks = [sink for sink in (self.events, self.feedback) if sink is not None]
        self.events = self.feedback = None
        await asyncio.gather(*(sink.aclose(grace_s) for sink in sinks))
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
