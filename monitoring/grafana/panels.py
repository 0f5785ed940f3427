"""Panel, query and variable builders the Orchard dashboards share (grafana-foundation-sdk).

Every panel and every query names the one Prometheus datasource (uid ``prometheus``, as
provisioned by ``provisioning/datasources/prometheus.yml``), so the JSON imports as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import timeseries as timeseries_panel
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, QueryVariable
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig as Thresholds
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphDrawStyle,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)

__all__ = [
    "GENERATED_NOTE",
    "MODEL",
    "MODEL_VERSION",
    "PROMETHEUS",
    "Query",
    "SloTargets",
    "builtin_annotations",
    "label_variable",
    "new_dashboard",
    "stat",
    "steps",
    "timeseries",
    "up_down",
]

#: The datasource every panel and query uses.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")

GENERATED_NOTE = (
    "Generated from monitoring/grafana/generate.py — do not edit; run `make monitoring`"
)

#: Label matchers of the dashboards' ``model`` and ``version`` variables.
MODEL = 'model=~"$model"'
MODEL_VERSION = 'model=~"$model", version=~"$version"'

#: A query: (PromQL, legend format). Legend "" lets Grafana name the series by its labels.
Query = tuple[str, str]


def _targets(queries: Sequence[Query], *, instant: bool) -> list[Dataquery]:
    targets = []
    for index, (expr, legend) in enumerate(queries):
        target = (
            Dataquery()
            .expr(expr)
            .ref_id(chr(ord("A") + index))
            .datasource(PROMETHEUS)
            .legend_format(legend or "__auto")
        )
        targets.append(target.instant() if instant else target.range())
    return targets


def steps(*points: tuple[float | None, str]) -> Thresholds:
    """Absolute thresholds from ``(value, color)`` pairs; the first value is None (-inf)."""
    return (
        Thresholds()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in points])
    )


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    min_value: float | None = None,
    max_value: float | None = None,
    bars: bool = False,
) -> timeseries_panel.Panel:
    """A time series panel of range queries."""
    panel = (
        timeseries_panel.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries, instant=False))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(10)
    )
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def stat(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    thresholds: Thresholds | None = None,
    mappings: Sequence[ValueMap] = (),
    width: int = 6,
    height: int = 5,
    decimals: int | None = None,
) -> stat_panel.Panel:
    """A single-value panel of instant queries (one value per series, the last one)."""
    panel = (
        stat_panel.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries, instant=True))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .thresholds(thresholds or steps((None, "green")))
    )
    if mappings:
        panel = panel.mappings(list(mappings))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def up_down() -> ValueMap:
    """Value mapping of ``up``: 1 shows as UP (green), 0 as DOWN (red)."""
    return ValueMap(
        options={
            "0": ValueMappingResult(text="DOWN", color="red", index=0),
            "1": ValueMappingResult(text="UP", color="green", index=1),
        }
    )


def label_variable(name: str, label: str, selector: str, *, title: str) -> QueryVariable:
    """A multi-value variable over the values ``label`` takes in ``selector``; "All" = ``.*``."""
    return (
        QueryVariable(name)
        .label(title)
        .datasource(PROMETHEUS)
        .query(f"label_values({selector}, {label})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .allow_custom_value(False)
    )


def builtin_annotations() -> AnnotationQuery:
    """Grafana's own "Annotations & Alerts" entry, which the UI adds to every dashboard."""
    return (
        AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


@dataclass(frozen=True, slots=True)
class SloTargets:
    """The default SLOs of monitoring/slo.yaml, drawn as thresholds."""

    availability: float
    latency: float
    latency_seconds: float


def new_dashboard(uid: str, title: str, summary: str, *, time_from: str, refresh: str) -> Dashboard:
    """A dashboard tagged ``orchard`` whose description says it is generated."""
    return (
        Dashboard(title)
        .uid(uid)
        .description(f"{summary}\n\n{GENERATED_NOTE}")
        .tags(["orchard"])
        .time(time_from, "now")
        .refresh(refresh)
        .timezone("browser")
        .annotation(builtin_annotations())
    )
