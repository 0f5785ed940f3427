"""Prometheus and Alertmanager configs for the local platform, from the repository's files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchard_cli.monitoring import (
    SCRAPE_JOBS,
    alertmanager_spec,
    find_monitoring_dir,
    prometheus_spec,
    rewrite_alertmanager_config,
    rewrite_prometheus_config,
)

CHECKED_IN = {
    "global": {"scrape_interval": "5s"},
    "rule_files": ["rules/*.yml"],
    "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
    "scrape_configs": [
        {"job_name": "gateway", "static_configs": [{"targets": ["127.0.0.1:8000"]}]},
        {"job_name": "inference", "static_configs": [{"targets": ["127.0.0.1:8080"]}]},
        {"job_name": "other", "static_configs": [{"targets": ["10.0.0.1:9100"]}]},
    ],
}


def test_each_job_scrapes_this_platforms_port_and_the_rules_are_the_repositorys(
    tmp_path: Path,
) -> None:
    config = rewrite_prometheus_config(
        CHECKED_IN,
        targets={"gateway": "127.0.0.1:18000", "inference": "127.0.0.1:18080"},
        rules_dir=tmp_path / "rules",
        alertmanager="127.0.0.1:19093",
    )
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {
        "gateway": ["127.0.0.1:18000"],
        "inference": ["127.0.0.1:18080"],
        "other": ["10.0.0.1:9100"],  # a job orchard up does not run is left as it is
    }
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yml")]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["127.0.0.1:19093"]
    assert config["global"] == {"scrape_interval": "5s"}
    assert CHECKED_IN["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def test_alerts_to_retraining_go_to_this_platforms_retraining() -> None:
    checked_in = {
        "receivers": [
            {
                "name": "orchard-retraining",
                "webhook_configs": [{"url": "http://127.0.0.1:8003/v1/alerts/alertmanager"}],
            },
            {"name": "pager", "webhook_configs": [{"url": "http://pager.example/hook"}]},
        ]
    }
    config = rewrite_alertmanager_config(checked_in, "http://127.0.0.1:18003")
    urls = [r["webhook_configs"][0]["url"] for r in config["receivers"]]
    assert urls == ["http://127.0.0.1:18003/v1/alerts/alertmanager", "http://pager.example/hook"]


def test_the_written_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    monitoring = find_monitoring_dir()
    assert monitoring is not None, "the repository's monitoring/ folder was not found"
    tools = {name: shutil.which(name) for name in ("promtool", "amtool")}
    if None in tools.values():
        reason = "promtool/amtool not installed (Debian: prometheus, prometheus-alertmanager)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    spec = prometheus_spec(
        "prometheus",
        monitoring,
        tmp_path,
        listen="127.0.0.1:19090",
        url="http://127.0.0.1:19090",
        targets={job: f"127.0.0.1:{18000 + i}" for i, job in enumerate(SCRAPE_JOBS)},
        alertmanager="127.0.0.1:19093",
        ready_timeout=5,
        stop_timeout=5,
    )
    written = tmp_path / "prometheus" / "prometheus.yml"
    assert f"--config.file={written}" in spec.argv
    jobs = {j["job_name"] for j in yaml.safe_load(written.read_text())["scrape_configs"]}
    assert set(SCRAPE_JOBS) <= jobs
    checked = subprocess.run(
        [str(tools["promtool"]), "check", "config", str(written)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alertmanager_spec(
        "alertmanager",
        monitoring,
        tmp_path,
        listen="127.0.0.1:19093",
        url="http://127.0.0.1:19093",
        retraining_url="http://127.0.0.1:18003",
        ready_timeout=5,
        stop_timeout=5,
    )
    am_config = tmp_path / "alertmanager" / "alertmanager.yml"
    assert "http://127.0.0.1:18003/v1/alerts/alertmanager" in am_config.read_text()
    checked = subprocess.run(
        [str(tools["amtool"]), "check-config", str(am_config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
