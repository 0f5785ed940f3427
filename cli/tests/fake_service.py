"""A tiny stand-in for a service, run as a child process by the supervisor tests.

It prints lines, optionally spawns a grandchild, and serves ``GET /ready`` (200, or 503 for
the first few probes) and ``GET /quit?code=N`` (exits with N) on ``--port``.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

GRANDCHILD = "import signal, time\n{ignore}\ntime.sleep(3600)\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="fake")
    parser.add_argument("--port", type=int)
    parser.add_argument("--stdout", action="append", default=[])
    parser.add_argument("--stderr", action="append", default=[])
    parser.add_argument("--not-ready-for", type=int, default=0, help="503 for N probes")
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--quit-when-ready", type=int, help="exit with N after the first 200")
    parser.add_argument("--exit-code", type=int, help="exit with this code right away")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--on-term", help="append --name to this file on SIGTERM, then exit")
    parser.add_argument("--grandchild", action="store_true")
    parser.add_argument("--grandchild-setsid", action="store_true")
    parser.add_argument("--grandchild-ignores-sigterm", action="store_true")
    args = parser.parse_args()

    for line in args.stdout:
        print(line, flush=True)
    for line in args.stderr:
        print(line, file=sys.stderr, flush=True)
    if args.exit_code is not None:
        sys.exit(args.exit_code)

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.on_term:

        def record(signum: int, frame: object) -> None:
            with open(args.on_term, "a") as f:
                f.write(f"{args.name}\n")
            os._exit(0)

        signal.signal(signal.SIGTERM, record)

    if args.grandchild:
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
        code = GRANDCHILD.format(ignore=ignore if args.grandchild_ignores_sigterm else "")
        subprocess.Popen([sys.executable, "-c", code], start_new_session=args.grandchild_setsid)

    if args.port is None:
        while True:
            time.sleep(3600)

    probes = {"count": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/ready":
                probes["count"] += 1
                ready = not args.never_ready and probes["count"] > args.not_ready_for
                self._reply(200 if ready else 503)
                if ready and args.quit_when_ready is not None:
                    self._quit(args.quit_when_ready)
            elif url.path == "/quit":
                self._reply(200)
                self._quit(int(urllib.parse.parse_qs(url.query).get("code", ["0"])[0]))
            else:
                self._reply(404)

        def _quit(self, code: int) -> None:
            self.wfile.flush()
            threading.Thread(target=os._exit, args=(code,)).start()

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *log_args: object) -> None:
            print(f"{self.command} {self.path}", flush=True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
