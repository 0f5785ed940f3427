"""What the gateway benchmark hands its processes: the route table, and reading their counts."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gateway.run import (
    MODEL,
    MODEL_VERSION,
    gateway_spec,
    parse_event_outcomes,
    write_routes_file,
)

from orchard_gateway.routes_table import parse_route_table

METRICS = """\
# HELP orchard_gateway_events_total Prediction events, by outcome.
# TYPE orchard_gateway_events_total counter
orchard_gateway_events_total{outcome="sent"} 1200.0
orchard_gateway_events_total{outcome="dropped"} 3.0
# HELP orchard_gateway_requests_total Requests.
# TYPE orchard_gateway_requests_total counter
orchard_gateway_requests_total{route="infer"} 5000.0
"""


def test_the_route_file_is_one_the_gateway_accepts(tmp_path: Path) -> None:
    path = write_routes_file(tmp_path / "routes.yaml", "http://127.0.0.1:8123")

    table = parse_route_table(path.read_text())  # raises on a table the gateway refuses

    assert list(table) == [MODEL]
    assert f'version: "{MODEL_VERSION}"' in path.read_text()


def test_payload_logging_is_on_only_with_an_evaluation_url(tmp_path: Path) -> None:
    off = gateway_spec("gateway", tmp_path / "r.yaml", tmp_path, evaluation_url=None)
    on = gateway_spec("gateway+logging", tmp_path / "r.yaml", tmp_path, "http://127.0.0.1:9")

    assert "ORCHARD_GATEWAY_EVALUATION_URL" not in off.env
    assert on.env["ORCHARD_GATEWAY_EVALUATION_URL"] == "http://127.0.0.1:9"


def test_event_outcomes_are_read_from_the_gateway_metrics() -> None:
    assert parse_event_outcomes(METRICS) == {"sent": 1200.0, "dropped": 3.0}


def test_a_gateway_without_the_events_metric_has_no_outcomes() -> None:
    assert parse_event_outcomes("# nothing here\n") == {}
