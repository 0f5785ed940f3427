"""Write the Orchard Grafana dashboards (dashboard model JSON) from their Python definitions.

Run `make monitoring` (or `python monitoring/grafana/generate.py [--output DIR]`). The output
is deterministic — sorted keys, panel ids numbered in layout order — so the checked-in JSON
under monitoring/grafana/dashboards/ must equal a fresh run; tests/monitoring checks that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import executive
import lifecycle
import model
import overview
import yaml
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from panels import SloTargets

HERE = Path(__file__).resolve().parent
SLO_FILE = HERE.parent / "slo.yaml"


def slo_targets(path: Path = SLO_FILE) -> SloTargets:
    """The default availability and latency SLOs of ``path`` (monitoring/slo.yaml)."""
    defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults", {})
    return SloTargets(
        availability=float(defaults["availability"]["target"]),
        latency=float(defaults["latency"]["target"]),
        latency_seconds=float(defaults["latency"]["threshold_seconds"]),
    )


def dashboards(slo: SloTargets) -> dict[str, Dashboard]:
    """Every dashboard, by its file name (without ``.json``)."""
    return {
        "executive": executive.build(slo),
        "lifecycle": lifecycle.build(),
        "model": model.build(),
        "overview": overview.build(),
    }


def _number_panels(model: dict[str, Any]) -> None:
    """Give every panel (rows and the panels inside collapsed rows too) a unique id, 1..n."""
    next_id = 1
    for panel in model.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for inner in panel.get("panels", []):
            inner["id"] = next_id
            next_id += 1


def render(dashboard: Dashboard) -> str:
    """The dashboard model JSON of a built dashboard, as written to disk."""
    model = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    _number_panels(model)
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(output: Path) -> list[Path]:
    """Write every dashboard into ``output``; return the files written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in sorted(dashboards(slo_targets()).items()):
        path = output / f"{name}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "dashboards",
        help="folder for the JSON files (default: monitoring/grafana/dashboards)",
    )
    args = parser.parse_args(argv)
    for path in generate(args.output):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
