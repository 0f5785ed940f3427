"""Prometheus and Alertmanager for the local platform, when their binaries are installed.

The repository's ``monitoring/`` folder is the one source of truth: ``orchard up`` copies its
scrape and Alertmanager configuration into the data folder with this platform's ports (the
checked-in files name the default ports), and points Prometheus at the checked-in rule files,
so what runs locally is what ``promtool`` tests and what the Helm chart renders.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from orchard_cli.supervisor import ProcessSpec

__all__ = [
    "SCRAPE_JOBS",
    "MonitoringBinaries",
    "alertmanager_spec",
    "find_binaries",
    "find_monitoring_dir",
    "monitoring_available",
    "prometheus_spec",
    "rewrite_alertmanager_config",
    "rewrite_prometheus_config",
]

# The scrape jobs of monitoring/prometheus/prometheus.yml, one per Orchard service.
SCRAPE_JOBS: Final = ("gateway", "inference", "evaluation", "retraining")
# What the checked-in Alertmanager config calls the retraining service.
_DEFAULT_RETRAINING: Final = "http://127.0.0.1:8003"


@dataclass(frozen=True)
class MonitoringBinaries:
    """Where Prometheus and Alertmanager are installed (``None``: not installed)."""

    prometheus: str | None
    alertmanager: str | None


def find_binaries() -> MonitoringBinaries:
    """Prometheus and Alertmanager on ``PATH`` (Debian names Alertmanager
    ``prometheus-alertmanager``)."""
    return MonitoringBinaries(
        prometheus=shutil.which("prometheus"),
        alertmanager=shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"),
    )


def monitoring_available() -> bool:
    """Whether ``orchard up`` can run Prometheus and Alertmanager here."""
    binaries = find_binaries()
    return (
        binaries.prometheus is not None
        and binaries.alertmanager is not None
        and find_monitoring_dir() is not None
    )


def find_monitoring_dir() -> Path | None:
    """The repository's ``monitoring/`` folder: ``$ORCHARD_MONITORING_DIR``, else the one
    beside this checkout's ``cli/`` (the platform runs from the workspace), else none."""
    override = os.environ.get("ORCHARD_MONITORING_DIR")
    candidates = [Path(override)] if override else []
    candidates += [parent / "monitoring" for parent in Path(__file__).resolve().parents]
    for folder in candidates:
        if (folder / "prometheus" / "prometheus.yml").is_file():
            return folder
    return None


def rewrite_prometheus_config(
    config: Mapping[str, Any],
    *,
    targets: Mapping[str, str],
    rules_dir: Path,
    alertmanager: str | None,
) -> dict[str, Any]:
    """The scrape config with each job's target, absolute rule files and the Alertmanager.

    Args:
        config: the checked-in ``prometheus.yml``.
        targets: job name → ``host:port`` to scrape.
        rules_dir: the checked-in ``rules/`` folder.
        alertmanager: ``host:port`` of Alertmanager, or ``None`` to send alerts nowhere.
    """
    out = dict(config)
    jobs = []
    for job in config.get("scrape_configs", []):
        job = dict(job)
        name = str(job.get("job_name"))
        if name in targets:
            job["static_configs"] = [{"targets": [targets[name]]}]
        jobs.append(job)
    out["scrape_configs"] = jobs
    out["rule_files"] = [str(rules_dir / "*.yml")]
    if alertmanager is None:
        out.pop("alerting", None)
    else:
        out["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return out


def rewrite_alertmanager_config(config: Mapping[str, Any], retraining_url: str) -> dict[str, Any]:
    """The Alertmanager config with its webhooks to retraining pointed at ``retraining_url``."""

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(value) for value in node]
        if isinstance(node, str) and node.startswith(_DEFAULT_RETRAINING):
            return retraining_url.rstrip("/") + node[len(_DEFAULT_RETRAINING) :]
        return node

    result: dict[str, Any] = visit(dict(config))
    return result


def prometheus_spec(
    binary: str,
    monitoring: Path,
    data_dir: Path,
    *,
    listen: str,
    url: str,
    targets: Mapping[str, str],
    alertmanager: str | None,
    ready_timeout: float,
    stop_timeout: float,
) -> ProcessSpec:
    """Prometheus scraping the local services with the repository's rules."""
    folder = data_dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    source = yaml.safe_load((monitoring / "prometheus" / "prometheus.yml").read_text())
    config = rewrite_prometheus_config(
        source,
        targets=targets,
        rules_dir=monitoring / "prometheus" / "rules",
        alertmanager=alertmanager,
    )
    config_file = folder / "prometheus.yml"
    config_file.write_text(_generated(yaml.safe_dump(config, sort_keys=False)), encoding="utf-8")
    return ProcessSpec(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={listen}",
            "--web.enable-lifecycle",
        ],
        ready_url=f"{url}/-/ready",
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
        cwd=folder,
    )


def alertmanager_spec(
    binary: str,
    monitoring: Path,
    data_dir: Path,
    *,
    listen: str,
    url: str,
    retraining_url: str,
    ready_timeout: float,
    stop_timeout: float,
) -> ProcessSpec:
    """Alertmanager routing the repository's way, drift and quality alerts to retraining."""
    folder = data_dir / "alertmanager"
    folder.mkdir(parents=True, exist_ok=True)
    source = yaml.safe_load((monitoring / "alertmanager" / "alertmanager.yml").read_text())
    config_file = folder / "alertmanager.yml"
    config = rewrite_alertmanager_config(source, retraining_url)
    config_file.write_text(_generated(yaml.safe_dump(config, sort_keys=False)), encoding="utf-8")
    return ProcessSpec(
        name="alertmanager",
        argv=[
            binary,
            f"--config.file={config_file}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address={listen}",
            # One local instance: no gossip port to collide with anything.
            "--cluster.listen-address=",
        ],
        ready_url=f"{url}/-/ready",
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
        cwd=folder,
    )


def _generated(text: str) -> str:
    return (
        "# Written by `orchard up` from the repository's monitoring/ folder with this "
        "platform's ports — edit those files, not this copy.\n" + text
    )
