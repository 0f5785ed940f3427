"""What the benchmarks' charts share: the title naming the machine, and writing the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_chart"]


def save_chart(figure: Any, path: Path, title: str, machine: dict[str, Any], *, dpi: int) -> None:
    """Title ``figure`` with ``title`` and the machine it ran on, write it to ``path``, close it.
    Needs matplotlib (the caller has checked that it is installed)."""
    import matplotlib.pyplot as plt

    figure.suptitle(
        f"{title} — {machine['cpu_model']}, {machine['usable_cores']} cores, {machine['date_utc']}",
        fontsize=10,
    )
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
