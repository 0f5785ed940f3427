"""Alertmanager's webhook payload (version 4) turned into retraining triggers.

Alertmanager posts ``{"version": "4", "status", "receiver", "groupLabels", "commonLabels",
"alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", ...}]}``.
A *firing* alert with a ``model`` label is a trigger for that model (kind: its
``alertname``; reason: its ``summary`` annotation); resolved alerts and alerts about no model
are skipped, each with the reason. The alert's fingerprint and start make the trigger's
external id, so Alertmanager's repeats of one firing alert are recorded once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchard_core.errors import InvalidInput
from orchard_retraining.triggers import Trigger

__all__ = ["SkippedAlert", "triggers_from_alertmanager"]


@dataclass(frozen=True)
class SkippedAlert:
    """An alert that did not become a trigger, and why."""

    index: int
    alertname: str | None
    reason: str


def triggers_from_alertmanager(
    payload: Any,
) -> tuple[list[tuple[int, Trigger]], list[SkippedAlert]]:
    """The triggers (with their alert's index) and the skipped alerts of one webhook call.

    Raises:
        InvalidInput: the payload is not an Alertmanager webhook message.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise InvalidInput("not an Alertmanager webhook payload: no 'alerts' list")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise InvalidInput(f"Alertmanager webhook version {version!r}; version 4 is understood")
    triggers: list[tuple[int, Trigger]] = []
    skipped: list[SkippedAlert] = []
    common = _strings(payload.get("commonLabels"))
    for index, alert in enumerate(payload["alerts"]):
        if not isinstance(alert, dict):
            skipped.append(SkippedAlert(index, None, "an alert must be a JSON object"))
            continue
        labels = {**common, **_strings(alert.get("labels"))}
        name = labels.get("alertname")
        if alert.get("status") != "firing":
            skipped.append(SkippedAlert(index, name, f"status {alert.get('status')!r}, not firing"))
            continue
        model = labels.get("model")
        if not model:
            skipped.append(SkippedAlert(index, name, "no 'model' label: not about a model"))
            continue
        annotations = _strings(alert.get("annotations"))
        fingerprint = str(alert.get("fingerprint") or "")
        starts = str(alert.get("startsAt") or "")
        triggers.append(
            (
                index,
                Trigger(
                    source="alertmanager",
                    model=model,
                    version=labels.get("version"),
                    kind=name or "alert",
                    reason=annotations.get("summary")
                    or annotations.get("description")
                    or (f"alert {name} firing"),
                    details={"labels": labels, "annotations": annotations, "startsAt": starts},
                    external_id=f"alert:{fingerprint}:{starts}" if fingerprint else None,
                ),
            )
        )
    return triggers, skipped


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float)}
