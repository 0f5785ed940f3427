"""Property tests: whatever a sender posts, the evaluation service never answers 5xx.

Hypothesis generates JSON (events, feedback items, profiles, CloudEvents headers) that is
well-formed, half-formed or nonsense; every answer must be a 2xx or a 4xx whose body is
``{"error": "<message>"}`` without a stack trace, and what was accepted must be readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from orchard_core import new_registry
from orchard_evaluation.app import create_app
from orchard_evaluation.settings import EvaluationSettings

from ..factories import event

pytestmark = pytest.mark.timeout(300)

EXAMPLES = settings(
    max_examples=120,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "request_id",
    "ts",
    "model",
    "version",
    "route_arm",
    "experiment",
    "unit",
    "inputs",
    "outputs",
    "latency_ms",
    "status",
    "trace_id",
    "shadow",
    "label",
    "value",
]
items = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8),
    st.builds(
        lambda base, changes: {**base, **changes},
        st.builds(event, st.text(min_size=1, max_size=40)),
        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    ),
)
bodies = st.one_of(
    st.lists(items, max_size=6),
    st.builds(lambda xs: {"events": xs}, st.lists(items, max_size=4)),
    st.builds(lambda xs: {"items": xs}, st.lists(items, max_size=4)),
    items,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("evaluation-properties")
    settings = EvaluationSettings(
        database_url=f"sqlite:///{folder / 'evaluation.db'}",
        log_json=False,
        max_body_bytes=16_384,
        profile_interval_s=3_600,
        monitor_interval_s=0,
        report_interval_s=0,
    )
    with TestClient(create_app(settings, registry=new_registry())) as test_client:
        yield test_client


def _dumps(value: Any) -> bytes:
    # The standard library writes integers of any size, as a sender might.
    return json.dumps(value).encode()


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}
        assert "Traceback" not in body["error"]


@EXAMPLES
@given(body=bodies)
def test_events_never_crash_the_service(client: TestClient, body: Any) -> None:
    response = client.post("/v1/events", content=_dumps(body))
    _check(response)


@EXAMPLES
@given(body=bodies)
def test_feedback_never_crashes_the_service(client: TestClient, body: Any) -> None:
    _check(client.post("/v1/feedback", content=_dumps(body)))


@EXAMPLES
@given(body=json_values, version=st.text(min_size=1, max_size=20).filter(lambda v: "/" not in v))
def test_profiles_never_crash_the_service(client: TestClient, body: Any, version: str) -> None:
    _check(client.put(f"/v1/profiles/m/{quote(version, safe='')}", content=_dumps(body)))
    _check(client.put("/v1/profiles/m/1", content=_dumps({"profile": body})))


@EXAMPLES
@given(
    kind=st.sampled_from(["request", "response", "other"]),
    ce_id=st.text(min_size=0, max_size=30),
    data=json_values,
)
def test_cloudevents_never_crash_the_service(
    client: TestClient, kind: str, ce_id: str, data: Any
) -> None:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": ce_id.encode("ascii", "ignore").decode() or "x",
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "properties",
    }
    _check(client.post("/v1/events", content=_dumps(data), headers=headers))


@EXAMPLES
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "model",
                "version",
                "since",
                "until",
                "baseline",
                "candidate",
                "methods",
                "thresholds",
                "min_rows",
                "output",
                "concept_params",
                "candidate_weight",
                "weights",
                "metric",
                "format",
            ]
        ),
        st.text(max_size=20),
        max_size=6,
    )
)
def test_queries_never_crash_the_service(client: TestClient, params: dict[str, str]) -> None:
    for path in (
        "/v1/drift",
        "/v1/quality",
        "/v1/compare",
        "/v1/experiments/e",
        "/v1/exports/m",
        "/v1/triggers",
        "/v1/reports",
        "/v1/profiles",
    ):
        _check(client.get(path, params=params))
