"""A minimal OTLP/HTTP trace receiver, run as its own process by the trace tests.

    python tests/integration/otlp_receiver.py SPANS.jsonl

It listens on a free loopback port, prints ``listening <port>`` on stdout once it accepts
requests, decodes each ``POST /v1/traces`` body (protobuf ``ExportTraceServiceRequest``,
gzip or not) and appends one JSON line per span to SPANS.jsonl: ``trace_id``, ``span_id``,
``parent_span_id`` (hex, empty for a root), ``name``, ``kind``, ``service.name``,
``attributes`` and ``links`` (``[{trace_id, span_id}]``). It stops on SIGTERM.
"""

from __future__ import annotations

import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_lock = threading.Lock()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """One plain record per span in an export request."""
    records = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "service.name": resource.get("service.name"),
                        "resource": resource,
                        "attributes": _attributes(span.attributes),
                        "links": [
                            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                            for link in span.links
                        ],
                    }
                )
    return records


def _handler(out: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            lines = "".join(json.dumps(span) + "\n" for span in spans_of(request))
            with _lock, out.open("a") as file:
                file.write(lines)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the spans file is the output

    return Handler


def main(argv: list[str]) -> int:
    """Serve until SIGTERM; the spans go to the file named by ``argv[0]``."""
    if len(argv) != 1:
        print("usage: otlp_receiver.py SPANS.jsonl", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.touch()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(out))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
