"""Generate the SLO rules (monitoring/prometheus/rules/slo.yml) from monitoring/slo.yaml.

The output holds, per model:

- the SLIs: ``orchard:gateway_prediction_errors:ratio_rate<w>`` (share of predictions that
  failed on our side) and ``orchard:gateway_prediction_slow:ratio_rate<w>`` (share slower than
  the latency threshold) for every window the alerts and dashboards use, and over the period;
- ``orchard:slo_{availability,latency}_error_budget_remaining:ratio`` over the period;
- the multi-window, multi-burn-rate alerts ``OrchardModelAvailabilityBudgetBurn`` and
  ``OrchardModelLatencyBudgetBurn`` (page and ticket), from ``burn_rate_alerts``.

Per-model overrides become rules restricted to those models; the default rules exclude them.

Usage: ``python monitoring/generate_rules.py [--check]`` (``make monitoring``); ``--check``
exits 1 when the checked-in file differs from a fresh generation.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.utils import floatToGoString

from orchard_core.metrics import LATENCY_BUCKETS

ROOT = Path(__file__).resolve().parent
SLO_FILE = ROOT / "slo.yaml"
OUTPUT = ROOT / "prometheus" / "rules" / "slo.yml"
HEADER = (
    "# Generated from monitoring/slo.yaml by monitoring/generate_rules.py — do not edit;"
    " run `make monitoring`\n"
)
RUNBOOK = "https://github.com/orchard-ml/orchard/blob/main/docs/runbooks/{}.md"

PREDICTIONS = "orchard_gateway_predictions_total"
DURATION = "orchard_gateway_prediction_duration_seconds"
FAILED_CODES = "5..|unreachable|timeout|circuit_open"
#: Windows the dashboards read, recorded whatever the alerts need.
DASHBOARD_WINDOWS = ("5m", "30m", "1h", "6h", "1d", "3d")
_DURATION = re.compile(r"^(\d+)([smhdwy])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Objective:
    """One SLO's settings (latency ones carry a threshold)."""

    target: float
    threshold_seconds: float | None = None

    @property
    def budget(self) -> float:
        """The allowed share of bad events, 1 - target."""
        return 1.0 - self.target


@dataclass(frozen=True)
class BurnRateAlert:
    """One window pair of the multi-window, multi-burn-rate alerts."""

    severity: str
    long_window: str
    short_window: str
    factor: float


@dataclass(frozen=True)
class SloConfig:
    """slo.yaml, validated."""

    period: str
    defaults: dict[str, Objective]
    overrides: dict[str, dict[str, Objective]]
    alerts: list[BurnRateAlert]

    def groups(self, slo: str) -> list[tuple[str, Objective]]:
        """(series selector, objective) pairs that together cover every model once."""
        special: dict[Objective, list[str]] = {}
        for model, slos in sorted(self.overrides.items()):
            objective = slos.get(slo, self.defaults[slo])
            if objective != self.defaults[slo]:
                special.setdefault(objective, []).append(model)
        pairs: list[tuple[str, Objective]] = []
        excluded = sorted(m for models in special.values() for m in models)
        default = f'{{model!~"{_alternatives(excluded)}"}}' if excluded else ""
        pairs.append((default, self.defaults[slo]))
        for objective, models in special.items():
            pairs.append((f'{{model=~"{_alternatives(models)}"}}', objective))
        return pairs


def _seconds(window: str) -> int:
    match = _DURATION.match(window)
    if not match:
        raise ValueError(f"{window!r} is not a Prometheus duration like 5m, 6h or 30d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _alternatives(models: list[str]) -> str:
    return "|".join(re.escape(m).replace("\\", "\\\\") for m in models)


def _number(value: float) -> str:
    return f"{round(value, 10):g}"


def _objective(raw: Any, default: Objective | None, slo: str, where: str) -> Objective:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}.{slo} must be a mapping")
    target = float(raw.get("target", default.target if default else "nan"))
    if not 0 < target < 1:
        raise ValueError(f"{where}.{slo}.target must be between 0 and 1 (exclusive)")
    threshold = None
    if slo == "latency":
        fallback = default.threshold_seconds if default else None
        threshold = float(raw.get("threshold_seconds", fallback or "nan"))
        if threshold not in LATENCY_BUCKETS:
            raise ValueError(
                f"{where}.latency.threshold_seconds {threshold:g} is not a bucket boundary of"
                f" {DURATION}: one of {', '.join(f'{b:g}' for b in LATENCY_BUCKETS)}"
            )
    return Objective(target, threshold)


def load(path: Path = SLO_FILE) -> SloConfig:
    """Read and validate slo.yaml.

    Raises:
        ValueError: a setting is missing or out of range (the message names it).
    """
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    period = str(raw.get("period", "30d"))
    _seconds(period)
    defaults = {
        slo: _objective((raw.get("defaults") or {}).get(slo), None, slo, "defaults")
        for slo in ("availability", "latency")
    }
    overrides = {
        str(model): {
            slo: _objective(slos[slo], defaults[slo], slo, f"models.{model}")
            for slo in ("availability", "latency")
            if slo in (slos or {})
        }
        for model, slos in (raw.get("models") or {}).items()
    }
    alerts = []
    for i, item in enumerate(raw.get("burn_rate_alerts") or []):
        alert = BurnRateAlert(
            str(item["severity"]),
            str(item["long_window"]),
            str(item["short_window"]),
            float(item["factor"]),
        )
        if alert.severity not in ("page", "ticket", "info"):
            raise ValueError(f"burn_rate_alerts[{i}].severity must be page, ticket or info")
        if _seconds(alert.short_window) >= _seconds(alert.long_window):
            raise ValueError(f"burn_rate_alerts[{i}]: short_window must be shorter than long")
        alerts.append(alert)
    if not alerts:
        raise ValueError("burn_rate_alerts is empty: no SLO would ever alert")
    return SloConfig(period, defaults, overrides, alerts)


def _windows(config: SloConfig) -> list[str]:
    wanted = set(DASHBOARD_WINDOWS) | {config.period}
    for alert in config.alerts:
        wanted |= {alert.long_window, alert.short_window}
    return sorted(wanted, key=_seconds)


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _rule(fields: list[tuple[str, str]], expr: str, tail: str = "") -> str:
    head = "".join(f"      {key}: {value}\n" for key, value in fields)
    head = "    - " + head[6:]
    return f"{head}      expr: |\n{_indent(expr, 8)}\n{tail}"


def _sli_rules(config: SloConfig) -> list[str]:
    rules = []
    for window in _windows(config):
        total = f"sum by (model) (rate({PREDICTIONS}[{window}]))"
        failed = f'sum by (model) (rate({PREDICTIONS}{{code=~"{FAILED_CODES}"}}[{window}]))'
        # `or 0 * total`: a model without failures gets 0, not an empty result.
        expr = f"(\n  {failed}\n  or\n  0 * {total}\n)\n/\n{total}"
        rules.append(
            _rule([("record", f"orchard:gateway_prediction_errors:ratio_rate{window}")], expr)
        )
    for window in _windows(config):
        for selector, objective in config.groups("latency"):
            le = floatToGoString(objective.threshold_seconds)  # type: ignore[no-untyped-call]
            matchers = f'le="{le}"' + (f", {selector[1:-1]}" if selector else "")
            count_selector = selector
            expr = (
                "1 - (\n"
                f"  sum by (model) (rate({DURATION}_bucket{{{matchers}}}[{window}]))\n"
                "  /\n"
                f"  sum by (model) (rate({DURATION}_count{count_selector}[{window}]))\n"
                ")"
            )
            rules.append(
                _rule([("record", f"orchard:gateway_prediction_slow:ratio_rate{window}")], expr)
            )
    for slo, sli in (("availability", "errors"), ("latency", "slow")):
        for selector, objective in config.groups(slo):
            expr = (
                f"1 - orchard:gateway_prediction_{sli}:ratio_rate{config.period}{selector}"
                f" / {_number(objective.budget)}"
            )
            rules.append(
                _rule([("record", f"orchard:slo_{slo}_error_budget_remaining:ratio")], expr)
            )
    return rules


_ALERT_TEXT = {
    "availability": (
        "OrchardModelAvailabilityBudgetBurn",
        "Model {{ $labels.model }} is failing predictions fast enough to spend its error"
        " budget early",
        "{{ $value | humanizePercentage }} of predictions for model {{ $labels.model }} failed"
        " over the last {long} (5xx, unreachable, timeout or circuit open): {factor} the"
        " rate that spends the {period} error budget of a {target} availability SLO.",
    ),
    "latency": (
        "OrchardModelLatencyBudgetBurn",
        "Model {{ $labels.model }} is answering too slowly, fast enough to spend its latency"
        " budget early",
        "{{ $value | humanizePercentage }} of predictions for model {{ $labels.model }} took"
        " longer than {threshold}s over the last {long}: {factor} the rate that spends the"
        " {period} budget of a {target} latency SLO.",
    ),
}


def _alert_rules(config: SloConfig) -> list[str]:
    rules = []
    for slo, sli in (("availability", "errors"), ("latency", "slow")):
        name, summary, description = _ALERT_TEXT[slo]
        for severity in dict.fromkeys(a.severity for a in config.alerts):
            pairs = [a for a in config.alerts if a.severity == severity]
            for selector, objective in config.groups(slo):
                budget = _number(objective.budget)
                clauses = []
                for a in pairs:
                    series = f"orchard:gateway_prediction_{sli}:ratio_rate"
                    clauses.append(
                        "(\n"
                        f"  {series}{a.long_window}{selector} > {_number(a.factor)} * {budget}\n"
                        "  and\n"
                        f"  {series}{a.short_window}{selector} > {_number(a.factor)} * {budget}\n"
                        ")"
                    )
                text = description
                for key, value in (
                    ("{long}", " / ".join(a.long_window for a in pairs)),
                    ("{factor}", " / ".join(f"{_number(a.factor)}x" for a in pairs)),
                    ("{period}", config.period),
                    ("{target}", _number(objective.target)),
                    ("{threshold}", _number(objective.threshold_seconds or 0)),
                ):  # not str.format: the text keeps Prometheus's {{ }} templates
                    text = text.replace(key, value)
                # The short window resolves the alert within minutes of the burn stopping;
                # `for` only rides out a single scrape's blip.
                wait = "2m" if severity == "page" else "15m"
                tail = (
                    f"      for: {wait}\n"
                    "      labels:\n"
                    f"        severity: {severity}\n"
                    f"        slo: {slo}\n"
                    "      annotations:\n"
                    f"        summary: {_quote(summary)}\n"
                    f"        description: {_quote(text)}\n"
                    f"        runbook_url: {RUNBOOK.format(name)}\n"
                )
                rules.append(_rule([("alert", name)], "\nor\n".join(clauses), tail))
    return rules


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: SloConfig) -> str:
    """The rules file's text."""
    budget_note = (
        f"# Error budget remaining over {config.period}: 1 - (bad share / (1 - target)). The\n"
        f"# {config.period} rate reads raw counters; it covers whatever data Prometheus holds\n"
        "# when its retention is shorter (a fresh local Prometheus: since it started).\n"
    )
    return (
        HEADER
        + budget_note
        + "groups:\n"
        + "  - name: orchard-slo-sli\n"
        + "    rules:\n"
        + "".join(_sli_rules(config))
        + "  - name: orchard-slo-alerts\n"
        + "    rules:\n"
        + "".join(_alert_rules(config))
    )


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the generated rules file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    try:
        text = render(load())
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: {SLO_FILE.name}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run `make monitoring`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
