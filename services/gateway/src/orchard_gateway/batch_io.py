"""JSONL and CSV files for batch jobs: input rows read and checked, result rows written.

Input rows are parsed here and checked with :class:`~orchard_gateway.batch.RowChecker`;
results are ``{"row": i, ...outputs}`` dicts, flattened for CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import orjson

from orchard_core.errors import InvalidInput
from orchard_gateway.batch import INT64_MAX, INT64_MIN, Row, RowChecker

__all__ = [
    "count_rows",
    "csv_header",
    "csv_line",
    "csv_record",
    "iter_csv_rows",
    "iter_jsonl_rows",
    "read_rows",
]

_INT_CELL: Final = re.compile(r"[+-]?\d+")
_FLOAT_CELL: Final = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


# --- reading ---------------------------------------------------------------------------


def iter_jsonl_rows(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for each non-blank line (numbered from 1).

    Raises:
        InvalidInput: a line is not valid JSON (naming the line).
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not valid JSON: {exc}") from None


def _cell(value: str) -> Any:
    if _INT_CELL.fullmatch(value):
        number = int(value)
        return number if INT64_MIN <= number <= INT64_MAX else float(number)
    if _FLOAT_CELL.fullmatch(value):
        return float(value)
    if value == "":
        return None  # an empty cell is a missing value: RowChecker refuses it by name
    return value


def iter_csv_rows(text: IO[str]) -> Iterator[tuple[int, Row]]:
    """``(line number, row)`` for each record after the header; numbers parsed as numbers.

    Raises:
        InvalidInput: no header, duplicate or empty column names, a record with another
            number of fields than the header, or broken quoting (naming the line).
    """
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the CSV file is empty; expected a header row")
        if any(not name for name in header) or len(set(header)) != len(header):
            raise InvalidInput("line 1: the header needs distinct, non-empty column names")
        for record in reader:
            if not record:
                continue
            if len(record) != len(header):
                raise InvalidInput(
                    f"line {reader.line_num}: {len(record)} fields, the header has {len(header)}"
                )
            yield reader.line_num, {name: _cell(v) for name, v in zip(header, record, strict=True)}
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: not valid CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the CSV file is not UTF-8: {exc.reason}") from None


def read_rows(path: Path, fmt: str) -> Generator[tuple[int, Row], None, None]:
    """``(line, row)`` for each row of an input file (parsed, not checked)."""
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as text:
            yield from iter_csv_rows(text)
    else:
        with path.open("rb") as lines:
            yield from iter_jsonl_rows(lines)


def count_rows(path: Path, fmt: str) -> tuple[int, dict[str, str]]:
    """Parse and check a whole input file; its number of rows and its columns' datatypes.

    Raises:
        InvalidInput: naming the first bad line.
    """
    checker = RowChecker()
    count = 0
    for line, row in read_rows(path, fmt):
        checker.check(row, f"line {line}")
        count += 1
    return count, checker.datatypes


# --- writing ---------------------------------------------------------------------------


def _flatten(name: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(f"{name}_{index}", item, into)
    else:
        into[name] = value


def csv_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """A result row with list values flattened into ``name_0, name_1, ...`` columns."""
    flat: dict[str, Any] = {}
    for name, value in result.items():
        _flatten(name, value, flat)
    return flat


def csv_header(columns: Iterable[str]) -> list[str]:
    """The CSV header for these flattened columns: ``row`` first, ``error`` last."""
    rest = [c for c in dict.fromkeys(columns) if c not in ("row", "error")]
    return ["row", *rest, "error"]


def csv_line(header: Sequence[str], record: Mapping[str, Any]) -> str:
    """One CSV line (with its line ending) of ``record``'s values in ``header`` order."""
    out = io.StringIO()

    def text(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else value

    csv.writer(out, lineterminator="\n").writerow([text(record.get(c)) for c in header])
    return out.getvalue()
