"""Which rows a retrained version's reference profile describes: the traffic it should expect."""

from __future__ import annotations

import pandas as pd

from orchard_pipelines.datasets import credit_risk
from orchard_pipelines.retrain_data import RetrainData, split_for_retraining
from orchard_pipelines.retrain_run import _profile_rows


def _data(production_rows: int) -> RetrainData:
    reference = credit_risk.generate(4_000, seed=1)
    production = credit_risk.generate(
        production_rows, seed=2, covariate_shift=1.0, concept_drift=1.0
    )
    return split_for_retraining(reference, production, features=credit_risk.FEATURES, seed=3)


def test_enough_recent_production_rows_are_the_reference() -> None:
    data = _data(2_000)
    rows = _profile_rows(data, seed=0)
    assert len(rows) == data.production_train_rows >= 1_000
    # The drifted applicants are younger: the profile follows them, not the reference data.
    reference_age = data.train["age"].iloc[: data.reference_train_rows].mean()
    assert rows["age"].mean() < reference_age - 3


def test_few_production_rows_weigh_as_in_training() -> None:
    data = _data(600)
    rows = _profile_rows(data, seed=0)
    assert len(rows) == len(data.train)
    production = data.train.iloc[data.reference_train_rows :]
    # About half the resampled rows are production rows (they weigh half in training).
    share = rows.index.isin(production.index).mean()
    assert 0.4 < share < 0.6
    assert isinstance(rows, pd.DataFrame)
