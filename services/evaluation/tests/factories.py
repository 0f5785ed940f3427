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


def reference_profile(n: int = 2_000, seed: int = 0) -> dict[str, Any]:
    """A reference profile (JSON form) of ``n`` training rows like the credit-risk data."""
    import numpy as np

    from orchard_core.profiles import ReferenceProfile, profile_columns

    rng = np.random.default_rng(seed)
    features = profile_columns(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.lognormal(10.8, 0.5, n),
            "employment_type": rng.choice(["salaried", "self_employed", "contract"], n),
        },
        {"employment_type": "categorical"},
    )
    outputs = profile_columns({"prediction": rng.integers(0, 2, n)}, {"prediction": "categorical"})
    return ReferenceProfile(n_rows=n, features=features, outputs=outputs).to_dict()


def credit_events(
    rng: Any,
    n: int,
    start: int,
    t0: float,
    age_shift: float = 0.0,
    version: str = "1",
    income_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """``n`` one-row events like :func:`reference_profile`'s data, spread over 180 s from
    ``t0``; ``age_shift`` moves the ages (and makes every prediction 1), ``income_scale``
    multiplies the incomes."""
    import numpy as np

    ages = rng.integers(18, 80, n) + age_shift
    incomes = rng.lognormal(10.8, 0.5, n) * income_scale
    kinds = rng.choice(["salaried", "self_employed", "contract"], n)
    predictions = np.ones(n, dtype=int) if age_shift else rng.integers(0, 2, n)
    return [
        event(
            f"{version}-{start + i}",
            version=version,
            ts=t0 + i * (180.0 / n),  # spread over three 60 s buckets
            inputs={
                "age": [float(ages[i])],
                "income": [float(incomes[i])],
                "employment_type": [str(kinds[i])],
            },
            outputs={"prediction": [int(predictions[i])]},
        )
        for i in range(n)
    ]
