"""Payload logging: prediction events queued in memory and posted to evaluation in batches.

Every prediction the gateway answers or mirrors (shadows included) becomes one event
(DESIGN §3, "Prediction events")::

    {request_id, ts, model, version, route_arm, experiment?, unit?,
     inputs: {name: values}, outputs: {name: values}, latency_ms, status, trace_id?, shadow}

``ts`` is Unix time in seconds (float). The hot path only calls :meth:`PredictionEventSink.offer`,
which is synchronous, never blocks and never raises: the event is sampled (by a hash of its
``request_id``, so a request's primary and shadow events are kept or skipped together) and
appended to a bounded queue, or dropped and counted when the queue is full. A background task
posts the queue to ``POST {evaluation_url}/v1/events`` as a JSON list, in batches of
``batch_size`` or every ``flush_interval_s``, whichever comes first. Evaluation may be down:
predictions never wait for it; batches are retried with exponential backoff and jitter on
connection errors, timeouts, 5xx and 429, then counted ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = [
    "EventSinkMetrics",
    "PredictionEventSink",
    "event_from_oip",
    "is_sampled",
    "oip_tensors",
]

_log = logging.getLogger("orchard.gateway.events")

EVENTS_PATH: Final = "/v1/events"
_JSON_HEADERS: Final = {"Content-Type": "application/json"}
_HASH_SPACE: Final = float(1 << 64)


class EventSinkMetrics:
    """The event sink's metrics, registered on the gateway's registry.

    ``orchard_gateway_events_total{outcome}`` counts events (not batches): ``sent`` (evaluation
    accepted them), ``failed`` (evaluation refused them, or kept failing until the attempts ran
    out), ``dropped`` (queue full, or still queued when the sink closed) and ``sampled_out``.
    ``orchard_gateway_event_queue_depth`` is the number of events waiting to be sent.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "orchard_gateway_events",
            "Prediction events, by outcome: sent (accepted by evaluation), failed (refused, or"
            " evaluation unreachable after all attempts), dropped (queue full or sink closed),"
            " sampled_out.",
            ["outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "orchard_gateway_event_queue_depth",
            "Prediction events queued in the gateway, waiting to be sent to evaluation.",
            registry=registry,
        )
        # Label children bound once: .labels() takes a lock and hashes the labels.
        self.sent = self.events.labels("sent")
        self.failed = self.events.labels("failed")
        self.dropped = self.events.labels("dropped")
        self.sampled_out = self.events.labels("sampled_out")


def is_sampled(request_id: str, rate: float) -> bool:
    """Whether events of ``request_id`` are kept at sampling ``rate`` (0..1); deterministic."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE < rate


def _flatten(data: list[Any]) -> list[Any]:
    # OIP v2 data is flat or nested row-major; flat is the common case and costs nothing.
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def oip_tensors(body: bytes | Mapping[str, Any] | None, key: str) -> dict[str, list[Any]]:
    """``{name: flat data}`` of the tensors under ``key`` ("inputs" or "outputs") of an OIP v2
    request or response, raw bytes or decoded. Malformed bodies and tensors are skipped, never
    raised: the result is ``{}`` or holds only the well-formed tensors."""
    try:
        decoded: Any = orjson.loads(body) if isinstance(body, bytes | bytearray) else body
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(decoded, Mapping):
        return {}
    tensors = decoded.get(key)
    if not isinstance(tensors, list):
        return {}
    out: dict[str, list[Any]] = {}
    for tensor in tensors:
        if not isinstance(tensor, Mapping):
            continue
        name = tensor.get("name")
        data = tensor.get("data")
        if isinstance(name, str) and isinstance(data, list):
            out[name] = _flatten(data)
    return out


def event_from_oip(
    request_body: bytes | Mapping[str, Any] | None,
    response_body: bytes | Mapping[str, Any] | None,
    *,
    request_id: str,
    model: str,
    version: str,
    route_arm: str,
    latency_ms: float,
    status: int,
    shadow: bool = False,
    experiment: str | None = None,
    unit: str | None = None,
    trace_id: str | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """One prediction event from an OIP v2 request and its response (bytes or decoded).

    ``inputs``/``outputs`` are ``{name: flat values}``; an error answer or a malformed body
    gives ``{}``. Optional fields are left out when ``None``. Never raises on bad bodies.
    """
    event: dict[str, Any] = {
        "request_id": request_id,
        "ts": time.time() if ts is None else ts,
        "model": model,
        "version": version,
        "route_arm": route_arm,
        "inputs": oip_tensors(request_body, "inputs"),
        "outputs": oip_tensors(response_body, "outputs"),
        "latency_ms": latency_ms,
        "status": status,
        "shadow": shadow,
    }
    if experiment is not None:
        event["experiment"] = experiment
    if unit is not None:
        event["unit"] = unit
    if trace_id is not None:
        event["trace_id"] = trace_id
    return event


class _Retryable(Exception):
    """An attempt that may succeed later (connection error, timeout, 5xx, 429)."""


class _Refused(Exception):
    """An answer that retrying will not change (4xx other than 429)."""


class PredictionEventSink:
    """A bounded in-memory queue of prediction events and the task that ships it.

    Use: ``sink.start()`` inside the running loop (app startup), ``sink.offer(event)`` per
    prediction, ``await sink.aclose(grace_s)`` at shutdown. The session is injected and stays
    the caller's to close (after ``aclose``).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        evaluation_url: str,
        metrics: EventSinkMetrics,
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
        self._session = session
        self._url = evaluation_url.rstrip("/") + EVENTS_PATH
        self._metrics = metrics
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

    def queue_depth(self) -> int:
        """Events queued, not yet handed to a flush."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def offer(self, event: Mapping[str, Any]) -> bool:
        """Queue one event if it is sampled in and there is room; True when queued.

        Synchronous, never blocks, never raises.
        """
        try:
            if not is_sampled(str(event.get("request_id", "")), self._sample_rate):
                self._metrics.sampled_out.inc()
                return False
            if self._closing or len(self._queue) >= self._max_queue:
                self._metrics.dropped.inc()
                return False
            self._queue.append(event)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
            return True
        except Exception:  # a broken event or metric must never fail a prediction
            _log.exception("prediction event not queued")
            return False

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
            _log.warning("dropped %d prediction events at shutdown", left)

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
                _log.exception("prediction event flush failed")
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
                        "%d prediction events not sent after %d attempts: %s",
                        len(batch),
                        attempt,
                        exc,
                    )
                    self._metrics.failed.inc(len(batch))
                    return
                cap = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(cap / 2, cap))  # noqa: S311 - jitter only
            except _Refused as exc:
                _log.error("evaluation refused %d prediction events: %s", len(batch), exc)
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
