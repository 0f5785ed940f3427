"""Reading stored predictions back as rows: one per prediction row, labels joined.

An event holds ``n_rows`` rows (a batch request); its ``inputs`` and ``outputs`` are
``{name: flat values}``. A column whose length is ``n_rows`` gives one value per row; any
other length (a multi-dimensional tensor, e.g. class probabilities ``[n_rows, k]``) is cut
into ``n_rows`` equal parts, so each row gets its list. A label belongs to the whole request:
a list as long as ``n_rows`` gives one label per row; anything else labels a one-row event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, select

from orchard_evaluation.db import Database
from orchard_evaluation.tables import Event, Label

__all__ = [
    "PREDICTION",
    "RowQuery",
    "flat_row",
    "iter_rows",
    "predicted_class",
    "split_columns",
]

PAGE: Final = 2_000
#: The predicted class, as reference profiles name it (``orchard_pipelines`` training).
PREDICTION: Final = "prediction"
# Where a served model puts it: the runtime's scikit-learn ``predict``, a model's own name.
_CLASS_OUTPUTS: Final = (PREDICTION, "predict")
# Scores whose argmax is the class: scikit-learn's probabilities, a network's logits.
_SCORE_OUTPUTS: Final = ("predict_proba", "probabilities", "logits")


@dataclass(frozen=True)
class RowQuery:
    """Which stored predictions to read."""

    model: str
    version: str | None = None
    since: float | None = None
    until: float | None = None
    labeled_only: bool = False
    include_shadow: bool = False
    include_failed: bool = False


def split_columns(columns: Mapping[str, Sequence[Any]], n_rows: int) -> list[dict[str, Any]]:
    """``{name: flat values}`` of ``n_rows`` rows → one ``{name: value}`` per row."""
    rows: list[dict[str, Any]] = [{} for _ in range(n_rows)]
    for name, values in columns.items():
        if len(values) == n_rows:
            for row, value in zip(rows, values, strict=True):
                row[name] = value
        elif n_rows and len(values) % n_rows == 0:
            width = len(values) // n_rows
            for index, row in enumerate(rows):
                row[name] = list(values[index * width : (index + 1) * width])
    return rows


def _query(spec: RowQuery, after_id: int) -> Select[Event, Label]:
    statement = (
        select(Event, Label)
        .join(Label, Label.request_id == Event.request_id, isouter=not spec.labeled_only)
        .where(Event.model == spec.model, Event.id > after_id)
        .order_by(Event.id)
        .limit(PAGE)
    )
    if spec.version is not None:
        statement = statement.where(Event.version == spec.version)
    if spec.since is not None:
        statement = statement.where(Event.ts >= spec.since)
    if spec.until is not None:
        statement = statement.where(Event.ts < spec.until)
    if not spec.include_shadow:
        statement = statement.where(Event.shadow.is_(False))
    if not spec.include_failed:
        statement = statement.where(Event.status < 400)
    return statement


def iter_rows(database: Database, spec: RowQuery) -> Iterator[list[dict[str, Any]]]:
    """Pages of rows in event order: ``request_id``, ``ts``, ``version``, ``route_arm``,
    ``inputs`` and ``outputs`` (``{name: value}``), ``label``, ``value`` and ``label_ts``
    (None when there is no label)."""
    after = 0
    while True:
        with database.session() as session:
            page = session.execute(_query(spec, after)).all()
        if not page:
            return
        after = page[-1][0].id
        rows: list[dict[str, Any]] = []
        for event, label in page:
            labels = _row_labels(label, event.n_rows)
            inputs = split_columns(event.inputs, event.n_rows)
            outputs = split_columns(event.outputs, event.n_rows)
            for index in range(event.n_rows):
                row: dict[str, Any] = {
                    "request_id": event.request_id,
                    "ts": event.ts,
                    "version": event.version,
                    "route_arm": event.route_arm,
                }
                row["inputs"] = inputs[index]
                row["outputs"] = outputs[index]
                row["label"] = labels[index]
                row["value"] = None if label is None else label.value
                row["label_ts"] = None if label is None else label.ts
                rows.append(row)
        yield rows


def _row_labels(label: Label | None, n_rows: int) -> list[Any]:
    if label is None or label.label is None:
        return [None] * n_rows
    value = label.label
    if isinstance(value, list) and len(value) == n_rows and n_rows > 1:
        return list(value)
    return [value] + [None] * (n_rows - 1) if n_rows == 1 else [None] * n_rows


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as one level of columns: the ids, each input, each output, then the label.

    An output named like an input would hide it, so outputs keep their names only when free.
    """
    flat = {k: row[k] for k in ("request_id", "ts", "version", "route_arm")}
    flat.update(row["inputs"])
    for name, value in row["outputs"].items():
        flat[name if name not in flat else f"output.{name}"] = value
    for key in ("label", "value", "label_ts"):
        flat[key] = row[key]
    return flat


def predicted_class(outputs: Mapping[str, Any]) -> Any:
    """One row's predicted class: its ``prediction`` or ``predict`` output, else the argmax
    of its class scores (``predict_proba`` or ``logits``); None when it has none."""
    for name in _CLASS_OUTPUTS:
        value = outputs.get(name)
        if value is not None and not isinstance(value, list):
            return value
    for name in _SCORE_OUTPUTS:
        scores = outputs.get(name)
        if isinstance(scores, list) and scores:
            return max(range(len(scores)), key=scores.__getitem__)
    return None
