"""monitoring/alertmanager/alertmanager.yml: valid for amtool, and routing what it should.

amtool comes from Debian's ``prometheus-alertmanager`` package (``.ci/run`` installs it).
Without it these tests skip, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "monitoring" / "alertmanager" / "alertmanager.yml"
RETRAINING_WEBHOOK = "http://127.0.0.1:8003/v1/alerts/alertmanager"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("amtool")
    if path is None:
        reason = "amtool is not installed (Debian: apt-get install prometheus-alertmanager)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it (.ci/run installs it)")
        pytest.skip(reason)
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)


def receivers_for(*labels: str) -> set[str]:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return set(result.stdout.strip().split(","))


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_config_passes_amtool_check() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_alert_goes_to_retraining_and_the_ticket_queue() -> None:
    got = receivers_for(
        "alertname=OrchardDataDrift",
        "category=drift",
        "severity=ticket",
        "model=credit-risk",
        "version=3",
    )
    assert got == {"orchard-retraining", "orchard-ticket"}


def test_quality_alert_goes_to_retraining() -> None:
    got = receivers_for(
        "alertname=OrchardRealizedQualityDrop",
        "category=quality",
        "severity=ticket",
        "model=credit-risk",
    )
    assert "orchard-retraining" in got


def test_page_goes_to_the_pager_only() -> None:
    got = receivers_for(
        "alertname=OrchardModelAvailabilityBudgetBurn",
        "severity=page",
        "slo=availability",
        "model=credit-risk",
    )
    assert got == {"orchard-pager"}


def test_ticket_without_category_skips_retraining() -> None:
    got = receivers_for("alertname=OrchardPipelineFailed", "severity=ticket", "model=credit-risk")
    assert got == {"orchard-ticket"}


def test_retraining_receiver_posts_to_its_webhook_with_resolutions() -> None:
    receiver = next(r for r in config()["receivers"] if r["name"] == "orchard-retraining")
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == RETRAINING_WEBHOOK
    assert webhook["send_resolved"] is True


def test_grouping_and_inhibition() -> None:
    cfg = config()
    assert cfg["route"]["group_by"] == ["alertname", "model"]
    inhibit = cfg["inhibit_rules"]
    target_down = next(
        r for r in inhibit if 'alertname="OrchardTargetDown"' in r["source_matchers"]
    )
    assert target_down["equal"] == ["job"]
    page_over_ticket = next(r for r in inhibit if 'severity="page"' in r["source_matchers"])
    assert page_over_ticket["target_matchers"] == ['severity="ticket"']
    assert page_over_ticket["equal"] == ["alertname", "model"]
