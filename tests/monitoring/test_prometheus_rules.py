"""The Prometheus side of monitoring/: scrape config, rules, promtool unit tests, runbooks.

promtool comes from Debian's ``prometheus`` package (``.ci/run`` installs it). Without it the
promtool tests skip, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_URL = "https://github.com/orchard-ml/orchard/blob/main/docs/runbooks/"
RUNBOOK_SECTIONS = (
    "## What it means",
    "## How to confirm",
    "## Likely causes",
    "## Mitigation",
    "## When to escalate",
)
#: Recording rules the Grafana dashboards read (monitoring/grafana): each must exist.
DASHBOARD_RECORDS = [
    "orchard:gateway_predictions:rate5m",
    *(
        f"orchard:gateway_prediction_{sli}:ratio_rate{w}"
        for sli in ("errors", "slow")
        for w in ("5m", "30m", "1h", "6h", "1d", "3d")
    ),
    "orchard:gateway_prediction_latency_seconds:p50_5m",
    "orchard:gateway_prediction_latency_seconds:p90_5m",
    "orchard:gateway_prediction_latency_seconds:p99_5m",
    "orchard:service_http_requests:rate5m",
    "orchard:service_http_errors:ratio_rate5m",
    "orchard:inference_batch_size:mean5m",
    "orchard:slo_availability_error_budget_remaining:ratio",
    "orchard:slo_latency_error_budget_remaining:ratio",
]


def tool(name: str, package: str) -> str:
    """The path of ``name``; skips without it (fails under CI=true)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it (.ci/run installs it)")
        pytest.skip(reason)
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def alert_names() -> list[str]:
    return sorted({rule["alert"] for rule in alerts()})


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "orchard_generate_rules", MONITORING / "generate_rules.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- promtool ---------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    promtool = tool("promtool", "prometheus")
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool_check() -> None:
    promtool = tool("promtool", "prometheus")
    result = run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    promtool = tool("promtool", "prometheus")
    result = run(promtool, "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_cover_every_rule_file() -> None:
    tested = {
        (path.parent / name).resolve()
        for path in TEST_FILES
        for name in load_yaml(path)["rule_files"]
    }
    assert {p.resolve() for p in RULE_FILES} <= tested


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test") or []:
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(alert_names())
    assert not names - firing, f"alerts never tested firing: {sorted(names - firing)}"
    assert not names - silent, f"alerts never tested not firing: {sorted(names - silent)}"


# --- rule content ----------------------------------------------------------------------


def test_dashboard_recording_rules_exist() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    missing = [name for name in DASHBOARD_RECORDS if name not in recorded]
    assert not missing


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_has_severity_text_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket", "info"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"{RUNBOOK_URL}{rule['alert']}.md"


@pytest.mark.parametrize("name", alert_names())
def test_alert_has_runbook_with_every_section(name: str) -> None:
    runbook = RUNBOOKS / f"{name}.md"
    assert runbook.is_file(), f"docs/runbooks/{name}.md is missing"
    text = runbook.read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    missing = [section for section in RUNBOOK_SECTIONS if section not in text]
    assert not missing, f"{runbook.name} lacks {missing}"
    # Every link to another runbook points at a file that exists.
    for target in re.findall(r"\]\(([^)#:]+\.md)\)", text):
        assert (runbook.parent / target).is_file(), f"{runbook.name} links to missing {target}"


def test_runbook_index_lists_every_alert() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for name in alert_names():
        assert f"]({name}.md)" in index
    for target in re.findall(r"\]\(([^)#:]+\.md)\)", index):
        assert (RUNBOOKS / target).is_file()


# --- scrape config ---------------------------------------------------------------------


def test_scrape_config_has_one_loopback_target_per_service() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "gateway": ["127.0.0.1:8000"],
        "inference": ["127.0.0.1:8080"],
        "evaluation": ["127.0.0.1:8002"],
        "retraining": ["127.0.0.1:8003"],
    }
    assert config["rule_files"] == ["rules/*.yml"]
    managers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert managers == ["127.0.0.1:9093"]


# --- the SLO rule generator -------------------------------------------------------------


def test_generated_slo_rules_are_up_to_date() -> None:
    module = generator()
    current = module.OUTPUT.read_text(encoding="utf-8")
    assert current.startswith(
        "# Generated from monitoring/slo.yaml by monitoring/generate_rules.py — do not edit;"
        " run `make monitoring`\n"
    )
    assert current == module.render(module.load()), "stale: run `make monitoring`"


def test_generator_applies_per_model_overrides(tmp_path: Path) -> None:
    module = generator()
    slo = load_yaml(MONITORING / "slo.yaml")
    slo["models"] = {"fraud": {"availability": {"target": 0.999}, "latency": {"target": 0.95}}}
    (tmp_path / "slo.yaml").write_text(yaml.safe_dump(slo), encoding="utf-8")
    text = module.render(module.load(tmp_path / "slo.yaml"))
    assert '{model!~"fraud"} > 14.4 * 0.005' in text  # the others keep the default
    assert '{model=~"fraud"} > 14.4 * 0.001' in text
    assert '{model=~"fraud"} > 14.4 * 0.05' in text
    assert 'ratio_rate30d{model=~"fraud"} / 0.001' in text
    promtool = shutil.which("promtool")
    if promtool:
        (tmp_path / "slo.yml").write_text(text, encoding="utf-8")
        result = run(promtool, "check", "rules", tmp_path / "slo.yml")
        assert result.returncode == 0, result.stdout + result.stderr


def test_generator_rejects_a_threshold_that_is_no_bucket(tmp_path: Path) -> None:
    module = generator()
    slo = load_yaml(MONITORING / "slo.yaml")
    slo["defaults"]["latency"]["threshold_seconds"] = 0.3
    (tmp_path / "slo.yaml").write_text(yaml.safe_dump(slo), encoding="utf-8")
    with pytest.raises(ValueError, match="not a bucket boundary"):
        module.load(tmp_path / "slo.yaml")
