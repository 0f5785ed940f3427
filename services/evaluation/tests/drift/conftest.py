"""Evidently's own stattest functions, as oracles for single-method tests."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

StatTest = Callable[..., tuple[float, bool]]


@pytest.fixture(scope="session")
def evidently_stattests() -> dict[str, StatTest]:
    """Evidently's implementation of each method, called as ``f(ref, cur, kind, threshold)``."""
    with warnings.catch_warnings():
        # Importing evidently 0.7.23 trips deprecations in its own and its dependencies' code.
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations.stattests import registry
        from evidently.legacy.core import ColumnType

    def wrap(name: str) -> StatTest:
        def run(reference: Any, current: Any, kind: str, threshold: float) -> tuple[float, bool]:
            column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
            # Chi-square and Z are registered for categories only, though Evidently's defaults
            # also run them on numeric columns with few values.
            registered = ColumnType.Categorical if name in ("chisquare", "z") else column_type
            test = registry.get_registered_stattest(name, registered)
            result = test(reference, current, column_type, threshold)
            return float(result.drift_score), bool(result.drifted)

        return run

    return {
        name: wrap(name) for name in ("wasserstein", "jensenshannon", "psi", "ks", "chisquare", "z")
    }
