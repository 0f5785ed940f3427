"""Data for retraining: evaluation's production export read and cleaned, the holdout chosen.

The export is JSONL, one flat object per labelled prediction: ``request_id``, ``ts``,
``version``, ``route_arm``, each model input, each model output, ``label``, ``value`` and
``label_ts``. Only the inputs and the label matter here; a row missing either is skipped and
counted, never guessed at. Everything is a data frame of feature columns plus ``label``, for
both models, so the holdout logic below is shared.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from orchard_pipelines.errors import PipelineError

__all__ = [
    "LABEL",
    "MIN_PRODUCTION_HOLDOUT",
    "PRODUCTION_HOLDOUT_SHARE",
    "REFERENCE_HOLDOUT_SHARE",
    "HoldoutSource",
    "ProductionDataError",
    "RetrainData",
    "clean_production_rows",
    "read_production_rows",
    "split_for_retraining",
]

LABEL: Final = "label"
# Below this many usable production rows a 30 % holdout is too small (about 60 rows) for the
# gate's bootstrap to tell two models apart, so the reference holdout is used instead.
MIN_PRODUCTION_HOLDOUT: Final = 200
PRODUCTION_HOLDOUT_SHARE: Final = 0.3
REFERENCE_HOLDOUT_SHARE: Final = 0.2
_FETCH_TIMEOUT_S: Final = 60.0

HoldoutSource = Literal["production", "reference"]
_logger = logging.getLogger("orchard_pipelines.retrain")


class ProductionDataError(PipelineError):
    """The production data could not be fetched or parsed; nothing was trained (CLI exit 2)."""


@dataclass(frozen=True)
class RetrainData:
    """Training rows and the holdout both models are scored on.

    ``train`` holds the reference rows first, then ``production_train_rows`` production rows.
    ``reference_rows`` and ``production_rows`` count the usable rows before the split.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_source: HoldoutSource
    reference_rows: int
    production_rows: int
    production_train_rows: int

    @property
    def reference_train_rows(self) -> int:
        """How many of the training rows are reference rows (they come first)."""
        return len(self.train) - self.production_train_rows

    def balanced_weights(self) -> np.ndarray:
        """Per-row sample weights: 1 for reference rows, and for production rows whatever
        makes the production rows, together, weigh as much as the reference rows."""
        # Production rows are what the model will face, and usually far fewer than reference
        # rows: equal totals learn recent behaviour without dropping the broad reference data.
        weights = np.ones(len(self.train), dtype=np.float64)
        if self.production_train_rows:
            share = self.reference_train_rows / self.production_train_rows
            weights[self.reference_train_rows :] = share
        return weights


def read_production_rows(
    source: str, *, timeout_s: float = _FETCH_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Read evaluation's JSONL export from an http(s) URL, a ``file:`` URL or a path.

    Raises:
        ProductionDataError: The source cannot be read, or a line is not a JSON object.
    """
    scheme = urllib.parse.urlsplit(source).scheme
    try:
        if scheme in ("http", "https"):
            # The scheme is checked, so this cannot open a file: or ftp: URL.
            with urllib.request.urlopen(source, timeout=timeout_s) as response:  # noqa: S310
                payload: bytes = response.read()
        elif scheme in ("", "file"):
            path = urllib.parse.urlsplit(source).path if scheme == "file" else source
            payload = Path(path).read_bytes()
        else:
            raise ProductionDataError(
                f"production data {source!r}: unsupported scheme {scheme!r} "
                "(use http, https, file or a path)"
            )
    except urllib.error.HTTPError as exc:
        raise ProductionDataError(
            f"cannot fetch production data from {source}: HTTP {exc.code} {exc.reason}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise ProductionDataError(f"cannot read production data from {source}: {reason}") from exc
    return _parse_jsonl(payload, source)


def _parse_jsonl(payload: bytes, source: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(payload.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            raise ProductionDataError(
                f"production data {source}: line {number} is not JSON ({exc}); "
                "expected evaluation's JSONL export"
            ) from exc
        if not isinstance(record, dict):
            raise ProductionDataError(
                f"production data {source}: line {number} is a JSON "
                f"{type(record).__name__}, not an object; expected evaluation's JSONL export"
            )
        records.append(record)
    return records


def clean_production_rows(
    records: Sequence[Mapping[str, Any]],
    *,
    features: Sequence[str],
    n_classes: int,
    integer: Collection[str] = frozenset(),
    categorical: Collection[str] = (),
) -> tuple[pd.DataFrame, int]:
    """Keep the rows with a valid label and every feature, cast to the model's signature.

    Integer features become int64, other numeric ones float64, categorical ones strings and
    the label int64 in ``0..n_classes-1``.

    Returns:
        The usable rows (``features`` then ``label``) and how many rows were skipped.
    """
    columns = [*features, LABEL]
    frame = pd.DataFrame.from_records(list(records), columns=columns)
    numeric = [c for c in columns if c not in categorical]
    values = frame[numeric].apply(_to_number)
    usable = np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)
    usable &= frame[list(categorical)].notna().all(axis=1).to_numpy()
    whole = [c for c in numeric if c in integer or c == LABEL]
    usable &= (values[whole] == values[whole].round()).all(axis=1).to_numpy()
    usable &= values[LABEL].between(0, n_classes - 1).to_numpy()
    kept = pd.DataFrame(index=pd.RangeIndex(int(usable.sum())))
    for column in columns:
        if column in categorical:
            kept[column] = frame.loc[usable, column].astype(str).to_numpy(dtype=object)
        else:
            dtype = np.int64 if column in whole else np.float64
            kept[column] = values.loc[usable, column].to_numpy(dtype=dtype)
    return kept, len(frame) - len(kept)


def _to_number(column: pd.Series) -> pd.Series:
    return column.map(_number).astype(np.float64)


def _number(value: object) -> float:
    # Booleans are not numbers here: True as a debt ratio would be a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")


def split_for_retraining(
    reference: pd.DataFrame, production: pd.DataFrame, *, features: Sequence[str], seed: int
) -> RetrainData:
    """Choose the holdout and assemble the training rows (see the retrain module docstring).

    With at least :data:`MIN_PRODUCTION_HOLDOUT` production rows the holdout is a stratified
    30 % of them and every reference row trains; otherwise it is a stratified 20 % of the
    reference rows and every production row trains.
    """
    columns = [*features, LABEL]
    if len(production) >= MIN_PRODUCTION_HOLDOUT:
        production_train, holdout = _stratified_split(production, PRODUCTION_HOLDOUT_SHARE, seed)
        reference_train = reference
        source: HoldoutSource = "production"
    else:
        reference_train, holdout = _stratified_split(reference, REFERENCE_HOLDOUT_SHARE, seed)
        production_train = production
        source = "reference"
    train = pd.concat(
        [reference_train[columns], production_train[columns]], ignore_index=True, copy=False
    )
    return RetrainData(
        train=train,
        holdout=holdout.reset_index(drop=True),
        holdout_source=source,
        reference_rows=len(reference),
        production_rows=len(production),
        production_train_rows=len(production_train),
    )


def _stratified_split(
    frame: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=frame[LABEL]
        )
    except ValueError as exc:
        # A class with a single row cannot be stratified; a plain split still works.
        _logger.warning("holdout split not stratified: %s", exc)
        train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    return train, test
