"""A tiny OIP v2 / KServe v1 model backend, run as its own process by the gateway's tests.

    python backend_process.py --port 0 --ready-file PATH [--mode ok|503|hang]

Once it listens, it writes its port to ``--ready-file`` (atomically), so a test knows
both that it is up and where. It answers:

- ``POST /v2/models/{m}/versions/{v}/infer``: a valid OIP v2 response (or as the mode says);
- ``POST /v1/models/{m}:predict``: ``{"predictions": [0, ...]}`` (or as the mode says);
- ``GET /v2/health/ready`` and other GETs: 200 with a small JSON body;
- ``POST /control`` ``{"mode": "ok"|"503"|"hang", "fail_next": N}``: how predictions are
  answered from now on (``fail_next``: the next N get a 503, then ``mode`` applies);
- ``GET /control``: ``{"mode", "fail_next", "predictions"}`` (predictions received so far).

Only aiohttp and the standard library, so it runs in the gateway's environment. SIGTERM or
SIGINT stop it promptly, hanging requests included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

MODES = ("ok", "503", "hang")
_VERSIONED = re.compile(r"^/v2/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)/infer$")
_BUSY = {"error": "backend busy (mode 503)"}


class Behaviour:
    """What the backend does with predictions now, and how many it has seen."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.fail_next = 0
        self.predictions = 0
        self.unhang = asyncio.Event()  # set when hanging requests must give up

    def snapshot(self) -> dict[str, Any]:
        return {"mode": self.mode, "fail_next": self.fail_next, "predictions": self.predictions}


def _json(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


def make_app(behaviour: Behaviour) -> web.Application:
    """The backend's aiohttp app, driven by ``behaviour``."""

    async def control(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                wanted = json.loads(await request.read() or b"{}")
            except ValueError:
                return _json({"error": "control body must be JSON"}, 400)
            mode = wanted.get("mode", behaviour.mode)
            if mode not in MODES:
                return _json({"error": f"mode must be one of {MODES}"}, 400)
            behaviour.mode = mode
            behaviour.fail_next = int(wanted.get("fail_next", 0))
            if mode != "hang":
                behaviour.unhang.set()
                behaviour.unhang = asyncio.Event()
        return _json(behaviour.snapshot())

    async def predict(request: web.Request) -> web.Response:
        body = await request.read()
        behaviour.predictions += 1
        if behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            return _json(_BUSY, 503, {"Retry-After": "1"})
        if behaviour.mode == "503":
            return _json(_BUSY, 503, {"Retry-After": "1"})
        if behaviour.mode == "hang":
            await behaviour.unhang.wait()
        try:
            payload = json.loads(body)
        except ValueError:
            return _json({"error": "request body is not JSON"}, 400)
        if not isinstance(payload, dict):
            return _json({"error": "request body must be a JSON object"}, 400)
        match = _VERSIONED.match(request.path)
        if match is None:  # KServe v1 :predict
            instances = payload.get("instances")
            count = len(instances) if isinstance(instances, list) else 0
            return _json({"predictions": [0] * count})
        answer = {
            "model_name": match["model"],
            "model_version": match["version"],
            "id": payload.get("id"),
            "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.5]}],
        }
        return _json(answer, headers={"X-Orchard-Model-Version": match["version"]})

    async def other(request: web.Request) -> web.Response:
        if request.method == "POST":
            return await predict(request)
        if request.path == "/v2/health/ready":
            return _json({"ready": True})
        return _json({"name": "backend-process", "path": request.path, "ready": True})

    app = web.Application()
    app.router.add_route("*", "/control", control)
    app.router.add_route("*", "/{tail:.*}", other)
    return app


async def serve(port: int, ready_file: Path | None, mode: str) -> None:
    """Listen on 127.0.0.1:``port`` until SIGTERM/SIGINT."""
    behaviour = Behaviour(mode)
    runner = web.AppRunner(make_app(behaviour), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    if ready_file is not None:
        staging = ready_file.with_name(ready_file.name + ".tmp")
        staging.write_text(str(bound))
        os.replace(staging, ready_file)
    else:
        print(bound, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        behaviour.unhang.set()  # hanging requests end, so cleanup does not wait on them
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--ready-file", type=Path, help="write the bound port here when up")
    parser.add_argument("--mode", choices=MODES, default="ok", help="initial behaviour")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.ready_file, args.mode))


if __name__ == "__main__":
    main()
