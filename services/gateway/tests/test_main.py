"""The real gateway process: start-up, a forwarded call, SIGTERM, and a refused start."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from .factories import eventually, infer_body, routes_to, write_routes
from .fake_backend import FakeBackend

START_DEADLINE_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(routes_file: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_"))}
    env.update(
        ORCHARD_GATEWAY_PORT=str(port),
        ORCHARD_GATEWAY_ROUTES_FILE=str(routes_file),
        ORCHARD_GATEWAY_LOG_JSON="false",
    )
    return env


async def _gateway(routes_file: Path, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchard_gateway",
        env=_env(routes_file, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _until_ready(
    http: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    async def ready() -> bool:
        assert process.returncode is None, "the gateway exited during start-up"
        try:
            async with http.get(url) as reply:
                return reply.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(ready, "the gateway to be ready", within_s=START_DEADLINE_S)


async def test_the_gateway_process_serves_and_stops_cleanly_on_sigterm(
    tmp_path: Path, backend: FakeBackend
) -> None:
    routes = write_routes(tmp_path / "routes.yaml", routes_to(backend.url, "digits"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = await _gateway(routes, port)
    try:
        async with aiohttp.ClientSession() as http:
            await _until_ready(http, f"{base}/readyz", process)
            async with http.post(
                f"{base}/v2/models/digits/infer",
                data=infer_body(),
                headers={"Content-Type": "application/json", "X-Request-Id": "proc-1"},
            ) as reply:
                assert reply.status == 200
                assert reply.headers["X-Orchard-Model-Version"] == "1"
                assert reply.headers["X-Request-Id"] == "proc-1"
                assert (await reply.json())["model_version"] == "1"
        assert backend.seen[0].path == "/v2/models/digits/versions/1/infer"
        assert backend.seen[0].headers["X-Request-Id"] == "proc-1"
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=START_DEADLINE_S)
        log = stderr.decode()
        # A graceful stop on SIGTERM exits 0 (orchard_core.server forgets uvicorn's re-raise).
        assert process.returncode == 0, log
        assert "Application shutdown complete" in log
        assert "Traceback" not in log
        assert " ERROR " not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "file not found"), ("models: {m: {backend: 'nope', version: 1}}\n", "model 'm'")],
    ids=["missing", "invalid"],
)
async def test_a_bad_route_table_stops_the_process_naming_the_file(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    routes = tmp_path / "routes.yaml"
    if content is not None:
        routes.write_text(content)
    process = await _gateway(routes, _free_port())
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=START_DEADLINE_S)
    message = stderr.decode()
    assert process.returncode != 0
    assert str(routes) in message
    assert problem in message
    assert "Traceback" not in message
