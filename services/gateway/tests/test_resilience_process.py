"""Timeouts, retries and the circuit breaker against a real backend process.

The backend (``backend_process.py``) runs as its own OS process, so it can be killed
(SIGKILL), frozen (SIGSTOP: the kernel still accepts connections, nobody answers) or told
to answer 503, the way a real model server fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest

from .conftest import Gateway, MakeGateway
from .factories import infer_body, routes_to, write_routes

pytestmark = pytest.mark.timeout(60)

SCRIPT = Path(__file__).with_name("backend_process.py")
INFER = "/v2/models/credit-risk/infer"
PREDICT_V1 = "/v1/models/credit-risk:predict"
JSON = {"Content-Type": "application/json"}
BACKEND_BUSY = {"error": "backend busy (mode 503)"}
START_WITHIN_S = 15.0  # a Python start-up on a busy 2-core machine
# Small limits so every failure mode answers within about a second.
FAST: dict[str, Any] = {
    "upstream_per_try_timeout_s": 1.0,
    "upstream_timeout_s": 2.0,
    "retry_max_attempts": 3,
}


class BackendProcess:
    """``backend_process.py`` in a child process: start, kill, freeze, steer."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._process: asyncio.subprocess.Process | None = None
        self._starts = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Start it (on ``port``; 0: any free one) and return once it listens."""
        self._starts += 1
        ready = self._workdir / f"ready-{self._starts}"
        log = self._workdir / f"backend-{self._starts}.log"
        with log.open("wb") as out:
            self._process = await asyncio.create_subprocess_exec(
                *(sys.executable, str(SCRIPT), "--port", str(port), "--ready-file", str(ready)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_WITHIN_S
        while not ready.exists():
            if self._process.returncode is not None:
                pytest.fail(f"backend process exited at start:\n{log.read_text()}")
            assert time.monotonic() < deadline, f"backend process not up:\n{log.read_text()}"
            await asyncio.sleep(0.01)  # polling the ready file, not waiting for readiness
        self.port = int(ready.read_text())
        assert (await self._call("GET", "/v2/health/ready"))["ready"] is True

    async def kill(self) -> None:
        """SIGKILL: the process dies at once; its sockets are closed by the kernel."""
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    def freeze(self) -> None:
        """SIGSTOP: it still accepts connections (the kernel does) but answers nothing."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGCONT)

    async def close(self) -> None:
        """Stop it whatever state it is in (frozen included); never leaves it behind."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self.thaw()
        process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def control(self, mode: str = "ok", fail_next: int = 0) -> None:
        await self._call("POST", "/control", {"mode": mode, "fail_next": fail_next})

    async def predictions(self) -> int:
        """Prediction requests this process (since its latest start) has received."""
        return int((await self._call("GET", "/control"))["predictions"])

    async def _call(self, method: str, path: str, payload: object = None) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, json=payload) as reply,
        ):
            assert reply.status == 200, await reply.text()
            answer: dict[str, Any] = await reply.json()
            return answer


@pytest.fixture
async def backend_process(tmp_path: Path) -> AsyncIterator[BackendProcess]:
    process = BackendProcess(tmp_path / "backend")
    try:
        await process.start()
        yield process
    finally:
        await process.close()


@pytest.fixture
def routes_file(tmp_path: Path, backend_process: BackendProcess) -> Path:
    """Overrides conftest's: every gateway in this module routes to the backend process."""
    return write_routes(
        tmp_path / "process-routes.yaml", routes_to(backend_process.url, "credit-risk")
    )


async def predict(gateway: Gateway) -> httpx2.Response:
    return await gateway.client.post(INFER, content=infer_body(), headers=JSON)


def calls(gateway: Gateway, code: str) -> float:
    return gateway.metric(
        "orchard_gateway_upstream_requests_total", model="credit-risk", version="1", code=code
    )


def retries(gateway: Gateway) -> float:
    return gateway.metric("orchard_gateway_upstream_retries_total", model="credit-risk")


def circuit(gateway: Gateway, backend: BackendProcess) -> float | None:
    return gateway.registry.get_sample_value(
        "orchard_gateway_circuit_state", {"backend": backend.url}
    )


async def test_a_killed_backend_gets_fast_502s_then_an_open_circuit_then_recovers(
    make_gateway: MakeGateway, backend_process: BackendProcess
) -> None:
    threshold, open_s = 5, 1.5
    settings = {**FAST, "breaker_failure_threshold": threshold, "breaker_open_s": open_s}
    async with make_gateway(**settings) as gateway:
        assert (await predict(gateway)).status_code == 200  # and a keep-alive connection
        await backend_process.kill()

        # Each caller request fails fast (connection refused, or the pooled connection
        # found dead) until `threshold` failed tries, retries included, open the circuit.
        failed: list[httpx2.Response] = []
        opening_request_sent_at = time.monotonic()
        while True:
            sent_at = time.monotonic()
            reply = await predict(gateway)
            assert time.monotonic() - sent_at < FAST["upstream_per_try_timeout_s"]
            if reply.status_code != 502:
                break
            assert "is unreachable" in reply.json()["error"]
            failed.append(reply)
            opening_request_sent_at = sent_at
            assert len(failed) <= threshold, "the circuit never opened"
        assert failed, "the first call after the kill was not a 502"
        assert len(failed) + retries(gateway) == threshold
        assert calls(gateway, "unreachable") == len(failed)
        assert circuit(gateway, backend_process) == 2

        # Open: refused at once, with the house error body and when to come back.
        assert reply.status_code == 503
        assert "circuit open" in reply.json()["error"]
        assert 1 <= int(reply.headers["retry-after"]) <= math.ceil(open_s)
        assert calls(gateway, "circuit_open") == 1
        assert calls(gateway, "unreachable") == len(failed)  # no try was made

        # Back on the same port; refused calls keep off it until the half-open probe.
        await backend_process.start(port=backend_process.port)
        refused_while_up = 0
        deadline = time.monotonic() + open_s + 5
        while (reply := await predict(gateway)).status_code == 503:
            assert "circuit open" in reply.json()["error"]
            refused_while_up += 1
            assert time.monotonic() < deadline, "the circuit never let a probe through"
            await asyncio.sleep(0.05)
        healed_at = time.monotonic()
        assert reply.status_code == 200
        assert reply.json()["model_version"] == "1"
        assert healed_at - opening_request_sent_at >= open_s
        # Only the probe reached the restarted backend, however many calls were refused.
        assert await backend_process.predictions() == 1
        assert calls(gateway, "circuit_open") == 1 + refused_while_up
        assert circuit(gateway, backend_process) == 0
        assert (await predict(gateway)).status_code == 200


@pytest.mark.parametrize(
    ("per_try_s", "total_s"),
    [(0.4, 2.0), (5.0, 0.4)],
    ids=["per-try-limit", "total-limit"],
)
@pytest.mark.parametrize("hang", ["sigstop", "mode-hang"])
async def test_a_hanging_backend_gets_504_within_the_timeout_then_its_circuit_opens(
    make_gateway: MakeGateway,
    backend_process: BackendProcess,
    hang: str,
    per_try_s: float,
    total_s: float,
) -> None:
    limit_s = min(per_try_s, total_s)
    settings = {
        "upstream_per_try_timeout_s": per_try_s,
        "upstream_timeout_s": total_s,
        "retry_max_attempts": 3,
        "breaker_failure_threshold": 2,
        "breaker_open_s": 30.0,
    }
    async with make_gateway(**settings) as gateway:
        assert (await predict(gateway)).status_code == 200
        if hang == "sigstop":
            backend_process.freeze()
        else:
            await backend_process.control("hang")
        try:
            for _ in range(2):
                sent_at = time.monotonic()
                async with asyncio.timeout(limit_s + 5):  # a hang fails the test, not CI
                    reply = await predict(gateway)
                took_s = time.monotonic() - sent_at
                assert reply.status_code == 504
                assert f"did not answer within {limit_s:g}s" in reply.json()["error"]
                assert limit_s <= took_s < limit_s + 1.0
            assert calls(gateway, "timeout") == 2
            assert retries(gateway) == 0  # the backend may have done the work: no retry
            assert circuit(gateway, backend_process) == 2
            sent_at = time.monotonic()
            refused = await predict(gateway)
            assert time.monotonic() - sent_at < 0.5
            assert refused.status_code == 503
            assert "circuit open" in refused.json()["error"]
        finally:
            backend_process.thaw()
        await backend_process.control("ok")  # answers again once thawed


async def test_a_503_backend_is_retried_up_to_max_attempts_and_its_503_comes_back(
    make_gateway: MakeGateway, backend_process: BackendProcess
) -> None:
    await backend_process.control("503")
    async with make_gateway(**FAST, breaker_failure_threshold=100) as gateway:
        reply = await predict(gateway)
        assert reply.status_code == 503
        assert reply.json() == BACKEND_BUSY  # the backend's own answer, unchanged
        assert reply.headers["retry-after"] == "1"
        assert await backend_process.predictions() == FAST["retry_max_attempts"]
        assert retries(gateway) == FAST["retry_max_attempts"] - 1
        assert calls(gateway, "503") == 1


async def test_retries_at_a_503_backend_stay_within_the_retry_budget(
    make_gateway: MakeGateway, backend_process: BackendProcess
) -> None:
    # The budget as the app builds it: 20% of requests plus a reserve of min_per_s over
    # its 10 s window, here 1/s, i.e. 10 retries.
    requests, ratio, reserve = 150, 0.2, 10
    await backend_process.control("503")
    settings = {
        **FAST,
        "upstream_timeout_s": 10.0,
        "retry_budget_ratio": ratio,
        "retry_budget_min_per_s": 1.0,
        "breaker_failure_threshold": 10_000,  # keep the breaker out of this
    }
    async with make_gateway(**settings) as gateway:
        replies = await asyncio.gather(*(predict(gateway) for _ in range(requests)))
        assert {r.status_code for r in replies} == {503}
        assert all(r.json() == BACKEND_BUSY for r in replies)
        spent = retries(gateway)
        # Without a budget, 3 attempts would mean 300 retries; the budget caps them.
        assert reserve <= spent <= ratio * requests + reserve
        assert await backend_process.predictions() == requests + spent
        assert calls(gateway, "503") == requests


@pytest.mark.parametrize(
    ("path", "body", "busy_first"),
    [(INFER, infer_body(), 1), (PREDICT_V1, b'{"instances": [[1, 2], [3, 4]]}', 2)],
    ids=["v2-infer", "v1-predict"],
)
async def test_a_503_then_ok_is_a_200_after_retries(
    make_gateway: MakeGateway,
    backend_process: BackendProcess,
    path: str,
    body: bytes,
    busy_first: int,
) -> None:
    await backend_process.control("ok", fail_next=busy_first)
    async with make_gateway(**FAST) as gateway:
        reply = await gateway.client.post(path, content=body, headers=JSON)
        assert reply.status_code == 200, reply.text
        assert retries(gateway) == busy_first
        assert await backend_process.predictions() == busy_first + 1
        assert circuit(gateway, backend_process) == 0


async def test_an_open_circuit_keeps_calls_off_a_503_backend(
    make_gateway: MakeGateway, backend_process: BackendProcess
) -> None:
    await backend_process.control("503")
    settings = {
        **FAST,
        "retry_max_attempts": 1,
        "breaker_failure_threshold": 2,
        "breaker_open_s": 30.0,
    }
    async with make_gateway(**settings) as gateway:
        for _ in range(2):
            assert (await predict(gateway)).json() == BACKEND_BUSY
        assert circuit(gateway, backend_process) == 2
        for _ in range(5):
            refused = await predict(gateway)
            assert refused.status_code == 503
            assert (
                f"backend {backend_process.url} is failing; circuit open"
                in (refused.json()["error"])
            )
            assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert await backend_process.predictions() == 2
        assert calls(gateway, "circuit_open") == 5


def _predictions_seen(port: int) -> int:
    # Loopback never goes through an HTTP proxy, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/control", timeout=5) as reply:
        return int(json.loads(reply.read())["predictions"])


def test_the_backend_process_stops_on_sigterm_with_a_request_hanging(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--ready-file", str(ready), "--mode", "hang"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_WITHIN_S
        while not ready.exists():
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling the ready file
        port = int(ready.read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as hanging:
            hanging.sendall(
                b"POST /v2/models/m/versions/1/infer HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 2\r\n\r\n{}"
            )
            while _predictions_seen(port) < 1:
                assert time.monotonic() < deadline, "the hanging request never arrived"
                time.sleep(0.01)  # polling until the request hangs in the backend
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
