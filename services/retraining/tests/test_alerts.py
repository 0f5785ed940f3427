"""Alertmanager's webhook payload: firing alerts about a model become triggers."""

from __future__ import annotations

import pytest

from orchard_core.errors import InvalidInput
from orchard_retraining.alerts import triggers_from_alertmanager

PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="DataDriftDetected"}',
    "status": "firing",
    "receiver": "retraining",
    "groupLabels": {"alertname": "DataDriftDetected"},
    "commonLabels": {"alertname": "DataDriftDetected", "severity": "ticket"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DataDriftDetected", "model": "credit-risk", "version": "3"},
            "annotations": {"summary": "credit-risk v3: 7 of 11 features drifted"},
            "startsAt": "2026-11-27T05:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DataDriftDetected", "model": "digits"},
            "annotations": {},
            "startsAt": "2026-11-27T04:00:00Z",
            "fingerprint": "d4",
        },
        {
            "status": "firing",
            "labels": {"alertname": "TargetDown", "job": "gateway"},
            "annotations": {"summary": "gateway down"},
            "startsAt": "2026-11-27T05:00:00Z",
            "fingerprint": "e5",
        },
    ],
}


def test_firing_alerts_about_a_model_become_triggers() -> None:
    triggers, skipped = triggers_from_alertmanager(PAYLOAD)
    [(index, trigger)] = triggers
    assert index == 0
    assert (trigger.source, trigger.model, trigger.version, trigger.kind) == (
        "alertmanager",
        "credit-risk",
        "3",
        "DataDriftDetected",
    )
    assert trigger.reason == "credit-risk v3: 7 of 11 features drifted"
    assert trigger.external_id == "alert:a1b2c3:2026-11-27T05:00:00Z"
    assert [(s.index, s.reason) for s in skipped] == [
        (1, "status 'resolved', not firing"),
        (2, "no 'model' label: not about a model"),
    ]


@pytest.mark.parametrize("payload", [[], {"alerts": "x"}, {"version": "3", "alerts": []}])
def test_what_is_not_a_webhook_payload_is_refused(payload: object) -> None:
    with pytest.raises(InvalidInput):
        triggers_from_alertmanager(payload)
