"""The generated Grafana dashboards: up to date, importable, and querying what exists.

- a fresh run of monitoring/grafana/generate.py gives the checked-in JSON byte for byte;
- every dashboard is Grafana dashboard model JSON with what an import needs (uid, title,
  panels with unique ids and grid positions, the provisioned Prometheus datasource);
- every query is valid PromQL (checked by promtool, as recording rules), every
  ``orchard:...`` recording rule it reads is defined in monitoring/prometheus/rules/, and
  every raw ``orchard_...`` metric it reads is defined in a service's source.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RULES = ROOT / "monitoring" / "prometheus" / "rules"
SOURCES = [ROOT / "libs" / "core" / "src", *sorted((ROOT / "services").glob("*/src"))]
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
EXPECTED_UIDS = {"orchard-overview", "orchard-model", "orchard-lifecycle", "orchard-executive"}
GENERATED_NOTE = (
    "Generated from monitoring/grafana/generate.py — do not edit; run `make monitoring`"
)

# Grafana's template variables, replaced by values Prometheus accepts for the PromQL checks.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# The suffixes Prometheus adds to a counter or a histogram's series on the wire.
WIRE_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _load() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, the ones inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable's metric selector."""
    queries = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            queries.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        match = re.fullmatch(r"label_values\((.+), *\w+\)", str(variable.get("query", "")))
        if match:
            queries.append((f"variable {variable['name']}", match.group(1)))
    return queries


def _as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)  # $model, ${version}: regex matchers


def _all_queries() -> list[tuple[str, str]]:
    return [
        (f"{name}: {where}", expr)
        for name, dashboard in _load().items()
        for where, expr in _queries(dashboard)
    ]


def _names(expr: str, pattern: str) -> set[str]:
    # Label values and legends are quoted: look at the expression outside strings only.
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(pattern, unquoted))


def test_checked_in_dashboards_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    checked_in = sorted(p.name for p in DASHBOARDS.glob("*.json"))
    assert fresh == checked_in, (
        f"monitoring/grafana/dashboards holds {checked_in}, the generator writes {fresh}:"
        " run `make monitoring` and commit the result"
    )
    stale = [n for n in fresh if (tmp_path / n).read_bytes() != (DASHBOARDS / n).read_bytes()]
    assert not stale, (
        f"{stale} differ from a fresh generation (edited by hand, or generate.py changed):"
        " run `make monitoring` and commit the result"
    )


def test_every_dashboard_is_importable_dashboard_model_json() -> None:
    dashboards = _load()
    assert {d["uid"] for d in dashboards.values()} == EXPECTED_UIDS
    for name, dashboard in dashboards.items():
        assert dashboard["title"], name
        assert "orchard" in dashboard["tags"], name
        assert GENERATED_NOTE in dashboard["description"], name
        assert dashboard["time"]["from"], name
        assert dashboard["time"]["to"] == "now", name
        assert dashboard["refresh"], name
        assert "id" not in dashboard or dashboard["id"] is None, f"{name}: import needs no id"
        panels = _panels(dashboard)
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat: {ids}"
        for panel in panels:
            where = f"{name}: {panel.get('title')!r}"
            assert panel["title"], where
            grid = panel["gridPos"]
            assert grid["w"] > 0, where
            assert grid["h"] > 0, where
            assert 0 <= grid["x"] <= 24 - grid["w"], f"{where}: outside the 24-column grid"
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == PROMETHEUS, where
            targets = panel["targets"]
            assert any(t.get("expr", "").strip() for t in targets), f"{where}: no query"
            for target in targets:
                assert target["datasource"] == PROMETHEUS, where
                assert target["refId"], where
            assert len({t["refId"] for t in targets}) == len(targets), f"{where}: refIds repeat"
        for variable in dashboard.get("templating", {}).get("list", []):
            assert variable["datasource"] == PROMETHEUS, f"{name}: ${variable['name']}"


def test_panels_do_not_overlap() -> None:
    for name, dashboard in _load().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            g = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & taken, f"{name}: {panel['title']!r} overlaps another panel"
            taken |= cells


def test_the_model_dashboard_filters_by_model_and_version() -> None:
    dashboard = _load()["model.json"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"model", "version"}
    assert variables["model"]["query"].startswith("label_values(")
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            assert '$model"' in target["expr"], f"{panel['title']}: not filtered by $model"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: install Debian's `prometheus` package")
        pytest.skip("promtool is missing (Debian package `prometheus`): PromQL not checked")
    # promtool checks expressions only inside rule files: each query becomes a recording rule.
    queries = _all_queries()
    rules = [
        {"record": f"dashboard:query_{index}:check", "expr": _as_promql(expr)}
        for index, (_, expr) in enumerate(queries)
    ]
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    index = "\n".join(
        f"  dashboard:query_{i}:check = {where}" for i, (where, _) in enumerate(queries)
    )
    assert result.returncode == 0, (
        f"a dashboard query is not valid PromQL:\n{result.stdout}{result.stderr}\n{index}"
    )


def test_recording_rules_used_by_panels_exist() -> None:
    defined = set()
    for path in sorted(RULES.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            defined |= {rule["record"] for rule in group.get("rules", []) if "record" in rule}
    assert defined, "no recording rules in monitoring/prometheus/rules/*.yml"
    used = {
        (name, where)
        for where, expr in _all_queries()
        for name in _names(expr, r"\borchard:[a-zA-Z0-9_:]+")
    }
    missing = sorted(f"{name} ({where})" for name, where in used if name not in defined)
    assert not missing, f"recording rules not in monitoring/prometheus/rules/: {missing}"


def _source_metric_names() -> set[str]:
    """Metric names the services define: quoted literals, plus core's HTTP metrics per service."""
    names: set[str] = set()
    services = set()
    for source in SOURCES:
        for path in source.rglob("*.py"):
            text = path.read_text()
            names |= set(re.findall(r'"(orchard_[a-z0-9_]+)"', text))
            services |= set(re.findall(r'service_name: str = Field\(default="(\w+)"', text))
    core_metrics = (ROOT / "libs/core/src/orchard_core/metrics.py").read_text()
    http = re.findall(r'f"\{prefix\}_([a-z0-9_]+)"', core_metrics)
    assert http, "orchard_core.metrics no longer names its HTTP metrics f'{prefix}_...'"
    names |= {f"orchard_{service}_http_{suffix}" for service in services for suffix in http}
    return names


def test_raw_metrics_used_by_panels_exist_in_the_services() -> None:
    defined = _source_metric_names()
    missing = []
    for where, expr in _all_queries():
        for name in _names(expr, r"\borchard_[a-z0-9_]+"):
            candidates = {name} | {name.removesuffix(s) for s in WIRE_SUFFIXES if name.endswith(s)}
            if not candidates & defined:
                missing.append(f"{name} ({where})")
    assert not missing, f"metrics no service defines: {sorted(missing)}"
