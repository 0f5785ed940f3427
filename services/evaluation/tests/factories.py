"""Test data: prediction events and feedback items as the gateway sends them."""

from __future__ import annotations

import time
from typing import Any


def event(request_id: str, **overrides: Any) -> dict[str, Any]:
    """One credit-risk prediction event (DESIGN §3), one row."""
    item: dict[str, Any] = {
        "request_id": request_id,
        "ts": time.time(),
        "model": "credit-risk",
        "version": "1",
        "route_arm": "champion",
        "inputs": {"age": [35], "income": [52000.0], "employment_type": ["salaried"]},
        "outputs": {"prediction": [0.18]},
        "latency_ms": 4.2,
        "status": 200,
        "shadow": False,
    }
    item.update(overrides)
    return item


def label(request_id: str, truth: Any = 1, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"request_id": request_id, "label": truth}
    item.update(overrides)
    return item
