"""Resilience for upstream calls: a circuit breaker per backend, a retry budget, retries.

Nothing here touches the network; ``call_with_retries`` drives an ``attempt`` callable the
caller supplies (in the gateway, one forward to a backend). Time and randomness are injected
(``clock``, ``sleep``, ``rand``) so every behaviour is testable without real waiting.

Circuit breaker (``CircuitBreaker``), one per backend. Policy: **consecutive failures**.
``failure_threshold`` failures in a row (no success between) open it. While open,
``allow()`` is False and ``retry_after_s()`` says how long until it half-opens. Half-open
lets at most ``half_open_probes`` requests through at once; one probe success closes it,
one probe failure re-opens it for ``open_s * backoff_factor ** n`` (capped at
``max_open_s``, reset to ``open_s`` once it closes). Transitions call ``on_transition``.

Retry budget (``RetryBudget``), Finagle-style: over a rolling ``window_s``, retries may not
exceed ``ratio`` x requests + ``min_per_s`` x ``window_s``, so retries cannot multiply load
on a struggling backend by more than ~20%, while a quiet service may still retry a little.

Retry policy (``RetryPolicy``): at most ``max_attempts`` tries; only connection failures
(connect refused/failed: the request never reached the backend) and HTTP 503 are retried;
exponential backoff with full jitter; each try bounded by ``per_try_timeout_s`` and all of
them together by ``total_deadline_s``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import aiohttp

from orchard_core.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitOpen",
    "RetryBudget",
    "RetryPolicy",
    "Verdict",
    "call_with_retries",
    "default_classify",
]

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Rand = Callable[[], float]
TransitionHook = Callable[[str, "BreakerState", "BreakerState"], None]


class CircuitOpen(ServiceUnavailable):
    """The backend's circuit breaker is open: refused without calling it (503).

    ``retry_after_s`` is how long until the breaker lets a probe through; ``headers``
    gives the matching ``Retry-After`` header (whole seconds, rounded up, at least 1).
    """

    def __init__(self, backend: str, retry_after_s: float) -> None:
        self.backend = backend
        self.retry_after_s = max(0.0, retry_after_s)
        super().__init__(
            f"backend {backend} is failing; circuit open, retry after {self.retry_after_s:.1f}s"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker for one backend (see the module docstring).

    Use: ``if breaker.allow(): ... then exactly one of record_success / record_failure /
    release`` (``release`` for an outcome that says nothing about the backend, e.g. the
    caller was cancelled; it frees a half-open probe slot).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        open_s: float = 5.0,
        max_open_s: float = 60.0,
        backoff_factor: float = 2.0,
        half_open_probes: int = 1,
        clock: Clock = time.monotonic,
        on_transition: TransitionHook | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1:
            raise ValueError("failure_threshold and half_open_probes must be >= 1")
        if open_s <= 0 or max_open_s < open_s or backoff_factor < 1:
            raise ValueError("need 0 < open_s <= max_open_s and backoff_factor >= 1")
        self.name = name
        self._threshold = failure_threshold
        self._base_open_s = open_s
        self._max_open_s = max_open_s
        self._factor = backoff_factor
        self._probe_limit = half_open_probes
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._open_s = open_s
        self._open_until = 0.0
        self._probes = 0  # half-open probes let through and not yet resolved

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose time is up reads as half-open."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def open_duration_s(self) -> float:
        """How long the next (or current) opening lasts."""
        return self._open_s

    def retry_after_s(self) -> float:
        """Seconds until an open breaker half-opens; 0 when not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def allow(self) -> bool:
        """Whether a request may go to the backend now (takes a probe slot when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self._probe_limit:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._open_s = self._base_open_s
            self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._open_s = min(self._max_open_s, self._open_s * self._factor)
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open()
        # OPEN: a late answer to a request let through before it opened; nothing to do.

    def release(self) -> None:
        """Forget a let-through request without judging the backend."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def _open(self) -> None:
        self._open_until = self._clock() + self._open_s
        self._failures = 0
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._probes = 0
        if old is not new and self._on_transition is not None:
            self._on_transition(self.name, old, new)


class CircuitBreakers:
    """One breaker per backend, made on first use with shared settings."""

    def __init__(self, factory: Callable[[str], CircuitBreaker] = CircuitBreaker) -> None:
        self._factory = factory
        self._by_backend: dict[str, CircuitBreaker] = {}

    def get(self, backend: str) -> CircuitBreaker:
        breaker = self._by_backend.get(backend)
        if breaker is None:
            breaker = self._by_backend[backend] = self._factory(backend)
        return breaker


class RetryBudget:
    """Retries allowed while retries <= ratio x requests + min_per_s x window_s (rolling).

    Counts live in ``buckets`` slots of ``window_s / buckets`` seconds each, so memory is
    fixed and the window moves in steps of one slot. Call ``record_request()`` once per
    original request (not per retry); ``can_retry()`` answers and, when True, spends one.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_s: float = 10.0,
        window_s: float = 10.0,
        buckets: int = 10,
        clock: Clock = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_s < 0 or window_s <= 0 or buckets < 1:
            raise ValueError("need ratio, min_per_s >= 0, window_s > 0, buckets >= 1")
        self._ratio = ratio
        self._reserve = min_per_s * window_s
        self._slot_s = window_s / buckets
        self._buckets = buckets
        self._clock = clock
        # (slot index, requests, retries), oldest first
        self._slots: deque[list[int]] = deque()

    def _current(self) -> list[int]:
        slot = math.floor(self._clock() / self._slot_s)
        while self._slots and self._slots[0][0] <= slot - self._buckets:
            self._slots.popleft()
        if not self._slots or self._slots[-1][0] != slot:
            self._slots.append([slot, 0, 0])
        return self._slots[-1]

    def record_request(self) -> None:
        self._current()[1] += 1

    def can_retry(self) -> bool:
        current = self._current()
        if self.retries + 1 > self._ratio * self.requests + self._reserve:
            return False
        current[2] += 1
        return True

    @property
    def requests(self) -> int:
        self._current()
        return sum(s[1] for s in self._slots)

    @property
    def retries(self) -> int:
        self._current()
        return sum(s[2] for s in self._slots)


class Verdict(enum.Enum):
    """How one attempt's outcome counts."""

    OK = "ok"  # return it; the backend is healthy (any 2xx-4xx, and 500: the model's answer)
    RETRY = "retry"  # backend failure that is safe to retry (connect failure, 503)
    FAIL = "fail"  # backend failure, not retried (timeout, broken connection, 502/504)


_RETRY_STATUSES: Final = frozenset({503})
_FAIL_STATUSES: Final = frozenset({502, 504})


def _is_connect_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # walk the cause chain (UpstreamError wraps the aiohttp error)
        if seen is None:
            return False
        if isinstance(seen, aiohttp.ClientConnectorError | ConnectionRefusedError):
            return True
        seen = seen.__cause__
    return False


def default_classify(outcome: object) -> Verdict:
    """Classify a result (anything with ``status`` or ``status_code``) or an exception.

    Retried: connect failures (the request never reached the backend, so retrying is safe
    even for non-idempotent requests) and 503. Timeouts and connections broken mid-request
    count against the breaker but are not retried: the backend may have done the work.
    """
    if isinstance(outcome, BaseException):
        if _is_connect_failure(outcome):
            return Verdict.RETRY
        if isinstance(outcome, TimeoutError | UpstreamTimeout | UpstreamError):
            return Verdict.FAIL
        if isinstance(outcome, aiohttp.ClientError | ConnectionError):
            return Verdict.FAIL
        return Verdict.OK  # not a backend failure (a bug, a bad request): no verdict on it
    status = getattr(outcome, "status", None)
    if status is None:
        status = getattr(outcome, "status_code", None)
    if status in _RETRY_STATUSES:
        return Verdict.RETRY
    if status in _FAIL_STATUSES:
        return Verdict.FAIL
    return Verdict.OK


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts, backoff with full jitter, and the per-try and total time limits."""

    max_attempts: int = 3
    base_backoff_s: float = 0.025
    max_backoff_s: float = 1.0
    per_try_timeout_s: float = 10.0
    total_deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if min(self.base_backoff_s, self.max_backoff_s) < 0:
            raise ValueError("backoffs must be >= 0")
        if self.per_try_timeout_s <= 0 or self.total_deadline_s <= 0:
            raise ValueError("timeouts must be > 0")

    def backoff_s(self, retry: int, rand: Rand = random.random) -> float:
        """Full jitter: uniform in [0, min(max, base x 2^(retry-1))) for retry 1, 2, ..."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2.0 ** max(0, retry - 1))
        return rand() * ceiling


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    budget: RetryBudget,
    breaker: CircuitBreaker,
    *,
    classify: Callable[[object], Verdict] = default_classify,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rand: Rand = random.random,
) -> T:
    """Run ``attempt(timeout_s)`` until it succeeds, may not be retried, or time runs out.

    Each try gets ``min(per_try_timeout_s, time left)`` and is also cut off at that time
    (``asyncio.timeout``), raising ``TimeoutError``. A retry needs: a RETRY verdict, an
    attempt left, the breaker's leave, budget, and its backoff ending before the deadline.
    When a retry is not possible the last outcome stands: the result is returned, or the
    exception raised (so a backend's final 503 goes back to the caller as it is).

    Raises:
        CircuitOpen: the breaker refused the first try (503, carries ``retry_after_s``).
        UpstreamTimeout: the total deadline was already spent before the first try.
    """
    deadline = clock() + policy.total_deadline_s
    budget.record_request()
    tries = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise UpstreamTimeout(f"no time left to call backend {breaker.name}")
        if not breaker.allow():
            raise CircuitOpen(breaker.name, breaker.retry_after_s())
        tries += 1
        timeout_s = min(policy.per_try_timeout_s, remaining)
        error: Exception | None = None
        try:
            async with asyncio.timeout(timeout_s):
                result = await attempt(timeout_s)
        except asyncio.CancelledError:
            breaker.release()
            raise
        except Exception as exc:
            error = exc
        outcome: object = error if error is not None else result
        verdict = classify(outcome)
        if verdict is Verdict.OK:
            if error is not None:
                breaker.release()  # says nothing about the backend
            else:
                breaker.record_success()
        else:
            breaker.record_failure()
        if verdict is Verdict.RETRY and _may_retry(tries, policy, breaker):
            delay = policy.backoff_s(tries, rand)
            if clock() + delay < deadline and budget.can_retry():
                await sleep(delay)
                continue
        if error is not None:
            raise error
        return result


def _may_retry(tries: int, policy: RetryPolicy, breaker: CircuitBreaker) -> bool:
    # Checked before spending budget; the breaker may have opened on this very failure.
    return tries < policy.max_attempts and breaker.state is not BreakerState.OPEN
