"""The runner against a real MLflow: a candidate the fake step registers is judged and made
the challenger, and one whose run fails is deleted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orchard_retraining.registry import ModelRegistry

from .conftest import MakeHarness

pytestmark = pytest.mark.integration


async def test_a_passed_candidate_becomes_the_challenger_in_mlflow(
    make_harness: MakeHarness, mlflow_server: Any
) -> None:
    registry = ModelRegistry(mlflow_server.url)
    model = f"credit-{uuid.uuid4().hex[:8]}"
    h = make_harness("--register", registry=registry, mlflow_tracking_uri=mlflow_server.url)
    run = h.runner.submit(model, auto_rollout=False)
    done = await h.until(run.id, lambda r: r.gate_verdict is not None, timeout_s=120)
    assert done.status == "succeeded", done.error
    assert done.gate_verdict == "passed"
    version = registry.version(model, str(done.candidate_version))
    assert version.tags["orchard.gate"] == "passed"
    assert version.tags["orchard.pipeline_run_id"] == str(run.id)
    assert registry.alias_version(model, "challenger") == done.candidate_version


async def test_a_failed_run_leaves_no_registered_version_in_mlflow(
    make_harness: MakeHarness, mlflow_server: Any
) -> None:
    registry = ModelRegistry(mlflow_server.url)
    model = f"credit-{uuid.uuid4().hex[:8]}"
    h = make_harness(
        "--register", "--mode", "fail", registry=registry, mlflow_tracking_uri=mlflow_server.url
    )
    run = h.runner.submit(model)
    done = await h.finished(run.id, timeout_s=120)
    assert done.status == "failed"
    assert "deleted the version(s) it had registered: 1" in (done.error or "")
    assert registry.versions_tagged(model, "orchard.pipeline_run_id", str(run.id)) == []
