"""The JSONL/CSV readers and writers of batch jobs."""

from __future__ import annotations

import csv
import io

import pytest

from orchard_core.errors import InvalidInput
from orchard_gateway.batch_io import (
    csv_header,
    csv_line,
    csv_record,
    iter_csv_rows,
    iter_jsonl_rows,
)


def test_jsonl_lines_are_numbered_and_blank_lines_skipped() -> None:
    lines = [b'{"a": 1}\n', b"\n", b'{"a": 2}\n']
    assert list(iter_jsonl_rows(lines)) == [(1, {"a": 1}), (3, {"a": 2})]
    with pytest.raises(InvalidInput, match="line 2: not valid JSON"):
        list(iter_jsonl_rows([b'{"a": 1}\n', b'{"a": \n']))


def test_csv_cells_that_look_like_numbers_are_numbers() -> None:
    text = io.StringIO('age,income,purpose,code\n41,52000.5,car,1e3\n30,-7,"home, new",x\n')
    assert list(iter_csv_rows(text)) == [
        (2, {"age": 41, "income": 52000.5, "purpose": "car", "code": 1000.0}),
        (3, {"age": 30, "income": -7, "purpose": "home, new", "code": "x"}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV file is empty"),
        ("a,a\n1,2\n", "line 1: the header needs distinct"),
        ("a,b\n1,2\n3\n", "line 3: 1 fields, the header has 2"),
        ('a,b\n1,"2\n', "not valid CSV"),
    ],
)
def test_malformed_csv_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        list(iter_csv_rows(io.StringIO(text)))


def test_csv_results_flatten_lists_and_parse_back() -> None:
    results = [
        {"row": 0, "predict": 1, "predict_proba": [0.25, 0.75]},
        {"row": 1, "error": "backend answered 500: boom"},
    ]
    records = [csv_record(r) for r in results]
    header = csv_header(c for r in records for c in r)
    assert header == ["row", "predict", "predict_proba_0", "predict_proba_1", "error"]
    text = csv_line(header, dict(zip(header, header, strict=True))) + "".join(
        csv_line(header, r) for r in records
    )
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0] == {
        "row": "0",
        "predict": "1",
        "predict_proba_0": "0.25",
        "predict_proba_1": "0.75",
        "error": "",
    }
    assert parsed[1]["error"] == "backend answered 500: boom"
    assert parsed[1]["predict"] == ""
