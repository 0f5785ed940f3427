"""The /metrics exposition: Prometheus text by default, OpenMetrics with exemplars on request."""

from __future__ import annotations

from prometheus_client import Counter

from orchard_core.metrics import metrics_response, new_registry


def test_exemplars_are_exposed_only_to_a_scraper_that_asks_for_openmetrics() -> None:
    registry = new_registry()
    served = Counter("orchard_test_served", "Served.", registry=registry)
    served.inc(exemplar={"trace_id": "abc123"})

    plain = metrics_response(registry, "text/plain;version=0.0.4;q=1,*/*;q=0.1")
    assert plain.media_type is not None
    assert plain.media_type.startswith("text/plain")
    assert b"orchard_test_served_total 1.0\n" in plain.body
    assert b"abc123" not in plain.body

    # What Prometheus sends when exemplar storage is on.
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    openmetrics = metrics_response(registry, accept)
    assert openmetrics.media_type is not None
    assert openmetrics.media_type.startswith("application/openmetrics-text")
    assert b'orchard_test_served_total 1.0 # {trace_id="abc123"} 1.0' in openmetrics.body
    assert openmetrics.body.endswith(b"# EOF\n")
    assert metrics_response(registry).media_type == plain.media_type
