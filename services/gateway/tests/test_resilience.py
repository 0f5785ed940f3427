"""Circuit breaker, retry budget and retries, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import aiohttp
import pytest

from orchard_core.errors import (
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    status_for,
)
from orchard_gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
    CircuitOpen,
    RetryBudget,
    RetryPolicy,
    Verdict,
    call_with_retries,
    default_classify,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Reply:
    status: int


@dataclass
class Script:
    """An attempt that plays back outcomes (a Reply, or an exception to raise)."""

    outcomes: list[Reply | Exception]
    clock: FakeClock | None = None
    takes_s: float = 0.0
    timeouts: list[float] = field(default_factory=list)

    async def __call__(self, timeout_s: float) -> Reply:
        self.timeouts.append(timeout_s)
        if self.clock is not None:
            self.clock.advance(self.takes_s)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @property
    def calls(self) -> int:
        return len(self.timeouts)


def breaker(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    return CircuitBreaker("http://backend:8080", clock=clock, **kwargs)  # type: ignore[arg-type]


def state(b: CircuitBreaker) -> BreakerState:
    return b.state  # a call, so mypy does not narrow the property between asserts


def roomy_budget(clock: FakeClock) -> RetryBudget:
    return RetryBudget(ratio=1.0, min_per_s=100.0, clock=clock)


# --- circuit breaker -------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=3)
    b.record_failure()
    b.record_failure()
    b.record_success()  # breaks the run
    b.record_failure()
    b.record_failure()
    assert state(b) is BreakerState.CLOSED
    assert b.allow()
    b.record_failure()
    assert state(b) is BreakerState.OPEN
    assert not b.allow()
    assert b.retry_after_s() == pytest.approx(5.0)
    clock.advance(2.0)
    assert b.retry_after_s() == pytest.approx(3.0)


def test_half_open_limits_probes_and_success_closes() -> None:
    clock = FakeClock()
    transitions: list[tuple[str, BreakerState, BreakerState]] = []
    b = breaker(
        clock,
        failure_threshold=1,
        half_open_probes=2,
        on_transition=lambda *t: transitions.append(t),
    )
    b.record_failure()
    clock.advance(5.0)
    assert state(b) is BreakerState.HALF_OPEN
    assert b.retry_after_s() == 0.0
    assert b.allow()
    assert b.allow()
    assert not b.allow()  # only two probes at a time
    b.release()  # one probe's caller went away: its slot is free again
    assert b.allow()
    assert not b.allow()
    b.record_success()
    assert state(b) is BreakerState.CLOSED
    assert b.allow()
    assert [(old, new) for _, old, new in transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert {name for name, _, _ in transitions} == {"http://backend:8080"}


def test_probe_failure_reopens_with_growing_capped_duration() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, open_s=1.0, max_open_s=3.0, backoff_factor=2.0)
    b.record_failure()
    expected = [2.0, 3.0, 3.0]  # 1 -> 2 -> 4 capped at 3
    waited = 1.0
    for duration in expected:
        clock.advance(waited)
        assert b.allow()  # the probe
        b.record_failure()
        assert state(b) is BreakerState.OPEN
        assert b.retry_after_s() == pytest.approx(duration)
        waited = duration
    clock.advance(waited)
    assert b.allow()
    b.record_success()
    assert state(b) is BreakerState.CLOSED
    assert b.open_duration_s == 1.0  # reset once closed
    b.record_failure()
    assert b.retry_after_s() == pytest.approx(1.0)


def test_late_failure_while_open_does_not_extend() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1)
    b.record_failure()
    clock.advance(1.0)
    b.record_failure()  # an answer to a request let through before it opened
    assert b.retry_after_s() == pytest.approx(4.0)


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="open_s"):
        CircuitBreaker("x", open_s=10.0, max_open_s=5.0)


def test_breakers_one_per_backend() -> None:
    breakers = CircuitBreakers()
    assert breakers.get("a") is breakers.get("a")
    assert breakers.get("a") is not breakers.get("b")
    assert breakers.get("b").name == "b"


# --- CircuitOpen -------------------------------------------------------------------------


def test_circuit_open_is_a_503_with_retry_after() -> None:
    error = CircuitOpen("http://backend:8080", 2.2)
    assert isinstance(error, ServiceUnavailable)
    assert status_for(error) == 503
    assert error.retry_after_s == 2.2
    assert error.headers == {"Retry-After": "3"}
    assert "http://backend:8080" in error.message
    assert CircuitOpen("b", 0.0).headers == {"Retry-After": "1"}


# --- retry budget ------------------------------------------------------------------------


def test_budget_caps_retries_at_ratio() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, window_s=10.0, clock=clock)
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.can_retry() for _ in range(50))
    assert granted == 20
    assert budget.retries == 20
    assert budget.requests == 100
    assert not budget.can_retry()


def test_budget_minimum_lets_a_quiet_service_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_s=0.5, window_s=10.0, clock=clock)
    budget.record_request()
    assert sum(budget.can_retry() for _ in range(10)) == 5  # 0.2 * 1 + 0.5 * 10 -> 5


def test_budget_recovers_as_window_moves() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, window_s=10.0, buckets=10, clock=clock)
    for _ in range(50):
        budget.record_request()
    assert sum(budget.can_retry() for _ in range(20)) == 10
    clock.advance(5.0)
    for _ in range(50):
        budget.record_request()
    assert sum(budget.can_retry() for _ in range(20)) == 10  # 0.2 * 100 - 10 spent
    clock.advance(5.0)  # the first 50 requests and 10 retries leave the window
    assert budget.requests == 50
    assert budget.retries == 10
    assert not budget.can_retry()
    clock.advance(5.0)  # everything has left
    assert budget.requests == 0
    assert budget.retries == 0
    for _ in range(10):
        budget.record_request()
    assert sum(budget.can_retry() for _ in range(5)) == 2


# --- retry policy ------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_bounds() -> None:
    policy = RetryPolicy(base_backoff_s=0.1, max_backoff_s=0.5)
    assert policy.backoff_s(1, lambda: 0.0) == 0.0
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        assert policy.backoff_s(retry, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
        for _ in range(200):
            assert 0.0 <= policy.backoff_s(retry) < ceiling


def test_policy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="timeouts"):
        RetryPolicy(total_deadline_s=0)


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Reply(200), Verdict.OK),
        (Reply(400), Verdict.OK),
        (Reply(404), Verdict.OK),
        (Reply(500), Verdict.OK),
        (Reply(503), Verdict.RETRY),
        (Reply(502), Verdict.FAIL),
        (Reply(504), Verdict.FAIL),
        (ConnectionRefusedError(), Verdict.RETRY),
        (TimeoutError(), Verdict.FAIL),
        (UpstreamTimeout("slow"), Verdict.FAIL),
        (UpstreamError("broke off"), Verdict.FAIL),
        (aiohttp.ServerDisconnectedError(), Verdict.FAIL),
        (ValueError("a bug"), Verdict.OK),
    ],
)
def test_default_classify(outcome: object, verdict: Verdict) -> None:
    assert default_classify(outcome) is verdict


async def test_connect_failure_wrapped_in_upstream_error_is_retryable() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError) as caught:
            await session.get(f"http://127.0.0.1:{port}/")
    wrapped = UpstreamError("unreachable")
    wrapped.__cause__ = caught.value
    assert default_classify(wrapped) is Verdict.RETRY


# --- call_with_retries -------------------------------------------------------------------


async def run(
    script: Script,
    clock: FakeClock,
    *,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
    cb: CircuitBreaker | None = None,
) -> Reply:
    return await call_with_retries(
        script,
        policy or RetryPolicy(max_attempts=3, base_backoff_s=0.1, max_backoff_s=1.0),
        budget or roomy_budget(clock),
        cb or breaker(clock),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )


async def test_retries_503_then_succeeds() -> None:
    clock = FakeClock()
    script = Script([Reply(503), Reply(503), Reply(200)])
    assert await run(script, clock) == Reply(200)
    assert script.calls == 3
    assert clock.slept == [pytest.approx(0.05), pytest.approx(0.1)]  # half of 0.1, 0.2


async def test_retries_connection_failures() -> None:
    clock = FakeClock()
    script = Script([ConnectionRefusedError(), Reply(200)])
    assert await run(script, clock) == Reply(200)
    assert script.calls == 2


@pytest.mark.parametrize("status", [500, 400, 404, 502, 200])
async def test_no_retry_for_other_statuses(status: int) -> None:
    clock = FakeClock()
    script = Script([Reply(status), Reply(200)])
    assert await run(script, clock) == Reply(status)
    assert script.calls == 1


async def test_no_retry_for_timeouts() -> None:
    clock = FakeClock()
    script = Script([TimeoutError(), Reply(200)])
    with pytest.raises(TimeoutError):
        await run(script, clock)
    assert script.calls == 1


async def test_last_503_is_returned_when_attempts_run_out() -> None:
    clock = FakeClock()
    script = Script([Reply(503)] * 5)
    assert await run(script, clock) == Reply(503)
    assert script.calls == 3


async def test_last_connection_error_is_raised_when_attempts_run_out() -> None:
    clock = FakeClock()
    script = Script([ConnectionRefusedError("one"), ConnectionRefusedError("two")])
    with pytest.raises(ConnectionRefusedError, match="two"):
        await run(script, clock, policy=RetryPolicy(max_attempts=2))


async def test_total_deadline_bounds_tries_and_backoff() -> None:
    clock = FakeClock()
    policy = RetryPolicy(
        max_attempts=10, base_backoff_s=1.0, max_backoff_s=1.0,
        per_try_timeout_s=2.0, total_deadline_s=5.0,
    )  # fmt: skip
    script = Script([Reply(503)] * 10, clock=clock, takes_s=1.5)
    assert await run(script, clock, policy=policy) == Reply(503)
    # t=0 try (1.5s), sleep 0.5, t=2 try (1.5s), sleep 0.5, t=4: 1s left, try gets 1s
    assert script.timeouts == [2.0, 2.0, pytest.approx(1.0)]
    assert clock.now - 1000.0 <= 5.5  # the last try overran its own timeout in this fake


async def test_no_retry_when_backoff_would_cross_the_deadline() -> None:
    clock = FakeClock()
    policy = RetryPolicy(
        max_attempts=5, base_backoff_s=4.0, max_backoff_s=4.0, total_deadline_s=3.0
    )
    script = Script([Reply(503), Reply(200)], clock=clock, takes_s=1.0)
    assert await run(script, clock, policy=policy) == Reply(503)  # 1 + 2 >= 3
    assert script.calls == 1
    assert clock.slept == []


async def test_per_try_timeout_is_enforced() -> None:
    async def hangs(timeout_s: float) -> Reply:
        await asyncio.sleep(60)
        return Reply(200)

    clock = FakeClock()
    cb = breaker(clock)
    policy = RetryPolicy(per_try_timeout_s=0.01)
    with pytest.raises(TimeoutError):
        await call_with_retries(hangs, policy, roomy_budget(clock), cb, clock=clock)
    assert state(cb) is BreakerState.CLOSED  # one failure, threshold 5


async def test_deadline_already_spent() -> None:
    clock = FakeClock()

    def jumpy() -> float:
        clock.advance(10.0)
        return clock.now

    with pytest.raises(UpstreamTimeout):
        await call_with_retries(
            Script([Reply(200)]),
            RetryPolicy(total_deadline_s=5.0),
            roomy_budget(clock),
            breaker(clock),
            clock=jumpy,
        )


async def test_budget_stops_retries() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, clock=clock)
    policy = RetryPolicy(max_attempts=2, base_backoff_s=0.0)
    results = [
        await run(Script([Reply(503), Reply(200)]), clock, policy=policy, budget=budget)
        for _ in range(10)
    ]
    # request n may retry while retries + 1 <= 0.2 * n: at n = 5 and n = 10
    assert [r.status for r in results] == [503] * 4 + [200] + [503] * 4 + [200]
    assert budget.requests == 10
    assert budget.retries == 2


async def test_open_breaker_refuses_with_circuit_open() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1, open_s=7.0)
    cb.record_failure()
    clock.advance(2.0)
    script = Script([Reply(200)])
    with pytest.raises(CircuitOpen) as caught:
        await run(script, clock, cb=cb)
    assert script.calls == 0
    assert caught.value.retry_after_s == pytest.approx(5.0)
    assert status_for(caught.value) == 503


async def test_failures_open_the_breaker_and_stop_retrying() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=2)
    script = Script([Reply(503)] * 5)
    assert await run(script, clock, policy=RetryPolicy(max_attempts=5), cb=cb) == Reply(503)
    assert script.calls == 2  # the second failure opened it: no third try
    assert state(cb) is BreakerState.OPEN


async def test_half_open_probe_success_closes_through_helper() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1, open_s=1.0)
    cb.record_failure()
    clock.advance(1.0)
    assert await run(Script([Reply(200)]), clock, cb=cb) == Reply(200)
    assert state(cb) is BreakerState.CLOSED


async def test_half_open_probe_503_reopens_without_retry() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1, open_s=1.0)
    cb.record_failure()
    clock.advance(1.0)
    script = Script([Reply(503), Reply(200)])
    assert await run(script, clock, cb=cb) == Reply(503)
    assert script.calls == 1
    assert state(cb) is BreakerState.OPEN
    assert cb.retry_after_s() == pytest.approx(2.0)


async def test_unclassified_error_frees_the_probe_and_propagates() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1, open_s=1.0)
    cb.record_failure()
    clock.advance(1.0)
    with pytest.raises(ValueError, match="bug"):
        await run(Script([ValueError("bug")]), clock, cb=cb)
    assert state(cb) is BreakerState.HALF_OPEN
    assert cb.allow()  # the probe slot came back


async def test_cancellation_frees_the_probe() -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1, open_s=1.0)
    cb.record_failure()
    clock.advance(1.0)
    started = asyncio.Event()

    async def hangs(timeout_s: float) -> Reply:
        started.set()
        await asyncio.sleep(60)
        return Reply(200)

    task = asyncio.create_task(
        call_with_retries(hangs, RetryPolicy(), roomy_budget(clock), cb, clock=clock)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state(cb) is BreakerState.HALF_OPEN
    assert cb.allow()


async def test_custom_classify() -> None:
    clock = FakeClock()
    script = Script([Reply(429), Reply(200)])
    result = await call_with_retries(
        script,
        RetryPolicy(base_backoff_s=0.0),
        roomy_budget(clock),
        breaker(clock),
        classify=lambda o: Verdict.RETRY if getattr(o, "status", 0) == 429 else Verdict.OK,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == Reply(200)
