"""The training step's interface: its command-line arguments and its progress lines.

The step is run as ``<pipeline_command> --model M --tracking-uri URI --pipeline-run-id ID
[--trigger-id ID] [--production-data URL] [--seed N] [--n-rows N] [--defect errors] --json``;
it writes ``orchard-progress <fraction> <stage>`` lines among its log lines and its result as
the last JSON object on stdout.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.tables import PipelineRunRecord

__all__ = ["last_progress", "step_arguments"]

_PROGRESS: Final = re.compile(r"^orchard-progress ([0-9.]+) (.*)$")


def step_arguments(record: PipelineRunRecord, settings: RetrainingSettings) -> list[str]:
    """The training step's command-line arguments for a run."""
    args = ["--model", record.model]
    if settings.mlflow_tracking_uri:
        args += ["--tracking-uri", settings.mlflow_tracking_uri]
    args += ["--pipeline-run-id", str(record.id)]
    if record.trigger_id is not None:
        args += ["--trigger-id", str(record.trigger_id)]
    if settings.evaluation_url:
        export = f"{settings.evaluation_url.rstrip('/')}/v1/exports/{quote(record.model, safe='')}"
        # Only recent rows: the data the model faces now, not what it faced months ago.
        since = record.created_at - settings.training_window_s
        args += ["--production-data", f"{export}?format=jsonl&labeled_only=true&since={since:.3f}"]
    for name in ("seed", "n_rows", "defect"):
        if name in record.options:
            args += [f"--{name.replace('_', '-')}", str(record.options[name])]
    return [*args, "--json"]


def last_progress(log: str) -> tuple[float, str] | None:
    """The last ``orchard-progress`` line's fraction (clamped to [0, 1]) and stage."""
    for line in reversed(log.splitlines()):
        match = _PROGRESS.match(line.strip())
        if match is None:
            continue
        try:
            fraction = float(match.group(1))
        except ValueError:
            continue
        return min(1.0, max(0.0, fraction)), match.group(2)[:200]
    return None
