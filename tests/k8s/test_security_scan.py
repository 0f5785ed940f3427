"""checkov over everything this repository deploys to Kubernetes: the chart as each ci/ scenario
renders it, and the plain manifests under k8s/. No check may fail. A finding accepted on purpose
is silenced on its own resource (a ``checkov.io/skipN: CKV_K8S_xx=<reason>`` annotation with a
comment beside it saying why), never for everything on the command line; these tests hold every
such exception to a reason.

One checkov run covers all of it (a few seconds); checkov comes from scripts/install-checkov.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .chart_render import ROOT, SCENARIOS, _checkov, _render_to

MANIFESTS = ROOT / "k8s"
#: What checkov writes when an annotation names a check but gives no reason.
NO_REASON = "No comment provided"


def _scenario_folder(scenario: Path) -> str:
    return scenario.name.removesuffix("-values.yaml")


def _offline_env() -> dict[str, str]:
    # Without these checkov asks PyPI for a newer release as soon as it is imported, and an API
    # key in a developer's shell would send it to the Prisma Cloud platform; offline either one
    # costs a network timeout. (--skip-download covers the platform's policy metadata.)
    env = {k: v for k, v in os.environ.items() if k not in {"BC_API_KEY", "PRISMA_API_URL"}}
    env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] = "true"
    return env


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """checkov's results over every scenario and k8s/, by kind (failed_checks, ...).

    File paths in them read ``/<scenario>/orchard/templates/<template>.yaml`` or
    ``/k8s/<path>``.
    """
    checkov = _checkov()
    folder = tmp_path_factory.mktemp("scan")
    for scenario in SCENARIOS:
        _render_to(scenario, folder / _scenario_folder(scenario))
    # k8s/ as it is now, whatever other files it has gained.
    shutil.copytree(MANIFESTS, folder / "k8s")
    command = [
        checkov,
        "--directory",
        str(folder),
        "--framework",
        "kubernetes",
        "--skip-download",
        "--output",
        "json",
        "--compact",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=300, env=_offline_env()
    )
    # 1 means "some check failed": the test below says which.
    assert done.returncode in {0, 1}, f"checkov crashed:\n{done.stdout}\n{done.stderr}"
    parsed = json.loads(done.stdout)
    # One object per framework, or a bare summary when nothing was scanned at all.
    runs = parsed if isinstance(parsed, list) else [parsed]
    merged: dict[str, list[dict[str, Any]]] = {
        "passed_checks": [],
        "failed_checks": [],
        "skipped_checks": [],
        "parsing_errors": [],
    }
    for run in runs:
        for kind, found in run.get("results", {}).items():
            merged.setdefault(kind, []).extend(found)
    return merged


def _describe(check: dict[str, Any]) -> str:
    return (
        f"{check['check_id']} ({check['check_name']}): {check['resource']} in {check['file_path']}"
    )


def test_no_check_fails(report: dict[str, list[dict[str, Any]]]) -> None:
    failed = sorted(_describe(c) for c in report["failed_checks"])
    assert not failed, (
        f"{len(failed)} checkov finding(s). Fix each in the template or manifest; if one truly "
        "does not apply, silence it on that resource with a `checkov.io/skipN: "
        "CKV_K8S_xx=<reason>` annotation and a comment saying why:\n" + "\n".join(failed)
    )


def test_every_file_was_parsed(report: dict[str, list[dict[str, Any]]]) -> None:
    # A file checkov cannot parse is a file nobody scanned.
    assert not report["parsing_errors"], report["parsing_errors"]


def test_every_scenario_was_scanned(report: dict[str, list[dict[str, Any]]]) -> None:
    # k8s/ is not held to this: checkov has no policies for KServe's resources, so a folder of
    # only InferenceServices and ServingRuntimes yields no results at all.
    checks = report["passed_checks"] + report["failed_checks"] + report["skipped_checks"]
    scanned = {c["file_path"].strip("/").split("/")[0] for c in checks}
    assert {_scenario_folder(s) for s in SCENARIOS} <= scanned


def test_every_exception_says_why(report: dict[str, list[dict[str, Any]]]) -> None:
    unexplained = sorted(
        _describe(c)
        for c in report["skipped_checks"]
        if c["check_result"].get("suppress_comment", NO_REASON) in {NO_REASON, ""}
    )
    assert not unexplained, (
        "checks silenced without a reason (write `checkov.io/skipN: CKV_K8S_xx=<reason>`):\n"
        + "\n".join(unexplained)
    )
