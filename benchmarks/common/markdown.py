"""Report parts every benchmark's Markdown shares: the machine section and the noise warning."""

from __future__ import annotations

from typing import Any

__all__ = ["machine_section", "noise_warning"]


def machine_section(machine: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """``## Machine``: date, commit, CPU, Python and package versions, the load generator
    (when the benchmark used wrk), load average."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    load_start = ", ".join(f"{x:.2f}" for x in machine.get("load_average_at_start", []))
    load_end = ", ".join(f"{x:.2f}" for x in machine["load_average_at_end"])
    generator = [f"- Load generator: {' '.join(config['wrk']) or 'wrk'}"] if "wrk" in config else []
    return [
        "## Machine",
        "",
        f"- Date: {machine['date_utc']}; code: `{config['git']}`",
        f"- CPU: {machine['cpu_model']}, {machine['usable_cores']} usable cores "
        f"({machine['cores']} online), {machine['memory_gib']} GiB RAM, Linux {machine['kernel']}",
        f"- Python {machine['python']}; {versions}",
        *generator,
        f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}; "
        f"CPU used by other processes just before the start: "
        f"{machine.get('busy_cores_before_start', 'n/a')} cores",
        "",
    ]


def noise_warning(machine: dict[str, Any]) -> list[str]:
    """A warning paragraph when other processes kept the cores busy at the start; else none."""
    other = machine.get("busy_cores_before_start")
    if not isinstance(other, int | float) or other < 0.3:
        return []
    return [
        f"> **Noisy run:** other processes kept {other:.1f} of the machine's "
        f"{machine['usable_cores']} cores busy when it started (see the machine CPU column). "
        "Absolute numbers are low and the ratios uncertain; rerun on a quiet machine.",
        "",
    ]
