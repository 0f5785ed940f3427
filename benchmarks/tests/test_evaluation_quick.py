"""``run.py --quick``: every step of the evaluation benchmark, at tiny sizes, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.evaluation.run import main

pytestmark = pytest.mark.integration


def test_a_quick_run_writes_the_results_and_the_report(tmp_path: Path) -> None:
    status = main(["--quick", "--work-dir", str(tmp_path / "work"), "--out-dir", str(tmp_path)])

    assert status == 0
    document = json.loads((tmp_path / "evaluation.json").read_text())
    assert [size["rows"] for size in document["drift"]] == [2_000, 6_000]
    for size in document["drift"]:
        orchard = size["orchard"][0]["verdict"]
        assert orchard["judged_rows"] == size["rows"]
        assert size["evidently"]["judged_rows"] == size["rows"]
        assert set(orchard["columns"]) == set(size["evidently"]["columns"])
    assert document["ingest"]["accepted"] > 0
    assert document["ingest"]["errors"] == 0
    assert "## Targets" in (tmp_path / "evaluation.md").read_text()
