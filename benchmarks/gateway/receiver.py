"""A stand-in for the evaluation service: accepts prediction events and counts them.

The gateway with payload logging on posts its events here (``POST /v1/events``, a JSON list);
the benchmark reads the count (``GET /count``) before and after each run, so the report shows
whether logging really happened. It parses each batch, as evaluation would, and keeps nothing.

Usage: ``python receiver.py --port 8099``
"""

from __future__ import annotations

import argparse
import json
import sys

from aiohttp import web

_EVENTS = web.AppKey("events", dict)


async def _events(request: web.Request) -> web.Response:
    try:
        batch = json.loads(await request.read())
    except ValueError:
        return web.json_response({"detail": "body is not JSON"}, status=400)
    counts = request.app[_EVENTS]
    counts["batches"] += 1
    counts["events"] += len(batch) if isinstance(batch, list) else 1
    return web.json_response({"accepted": counts["events"]}, status=202)


async def _count(request: web.Request) -> web.Response:
    return web.json_response(request.app[_EVENTS])


async def _ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def create_app() -> web.Application:
    """The receiver: ``POST /v1/events`` (202), ``GET /count``, ``GET /v2/health/ready``."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_EVENTS] = {"events": 0, "batches": 0}
    app.router.add_post("/v1/events", _events)
    app.router.add_post("/v1/feedback", _events)
    app.router.add_get("/count", _count)
    app.router.add_get("/v2/health/ready", _ready)
    return app


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
