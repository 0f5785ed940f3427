"""Rendering charts/orchard with helm for the chart tests: the scenarios, helm itself (from
``scripts/install-helm`` or PATH; skipped without it, failed under CI=true), and helpers
over the rendered documents."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "orchard"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
BACKENDS = ROOT / "services/retraining/src/orchard_retraining/k8s/backends.py"
KUBERNETES_VERSION = "1.33.0"  # a recent release kubernetes-validate knows
SERVICES = {"gateway": 8000, "evaluation": 8002, "retraining": 8003, "mlflow": 5000}
SHUTDOWN_GRACE_S = 20  # ServiceSettings.shutdown_grace_s, the services' default
RELEASE = "orchard-ci"
EVENTS_API = ROOT / "services/evaluation/src/orchard_evaluation/api/events.py"
GPU = "nvidia.com/gpu"


def _tool(name: str) -> str:
    """``.tools/bin/<name>`` (from ``scripts/install-<name>``) or ``<name>`` on PATH; skipped
    without it, failed under CI=true."""
    local = ROOT / ".tools" / "bin" / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        reason = f"{name} not found: run scripts/install-{name} (installs .tools/bin/{name})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _helm() -> str:
    return _tool("helm")


def _run_helm(*args: str) -> str:
    done = subprocess.run(
        [_helm(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@cache
def _render(scenario: Path) -> tuple[dict[str, Any], ...]:
    out = _run_helm("template", RELEASE, str(CHART), "--namespace", "orchard", "-f", str(scenario))
    return tuple(d for d in yaml.safe_load_all(out) if d)


def _of_kind(documents: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _pod_templates(documents: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Each workload's pod template, by the workload's name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in documents
        if d["kind"] in {"Deployment", "StatefulSet"}
    }


def _all_pods(documents: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    specs = [t["spec"] for t in _pod_templates(documents).values()]
    return specs + [d["spec"] for d in _of_kind(documents, "Pod")]


scenario = pytest.mark.parametrize("values", SCENARIOS, ids=[p.name for p in SCENARIOS])

# prometheus-operator's API (ServiceMonitor, PodMonitor, PrometheusRule): kubernetes-validate
# has no schema for it, so test_chart_monitoring.py checks those objects itself.
PROMETHEUS_OPERATOR_API = "monitoring.coreos.com/v1"


def _checkov() -> str:
    return _tool("checkov")


def _render_to(scenario: Path, folder: Path) -> None:
    """Render a scenario as helm lays it out: ``folder/orchard/templates/<template>.yaml``,
    so that a finding in a file names the template it came from."""
    _run_helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        "orchard",
        "-f",
        str(scenario),
        "--output-dir",
        str(folder),
    )
