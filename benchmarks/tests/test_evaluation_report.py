"""The evaluation benchmark's report: speed-up, agreement, targets and the Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from benchmarks.evaluation.report import (
    agreement,
    markdown,
    speed_up,
    target_verdicts,
    write_report,
)

FEATURES = ("a", "b", "c", "d")


def _verdict(
    seconds: float, peak: float, drifted: tuple[bool, ...], dataset: bool = False
) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "first_s": seconds,
        "merge_s": seconds * 0.8,
        "detect_s": seconds * 0.2,
        "rss_before_mib": peak - 10,
        "peak_rss_mib": peak,
        "columns": {
            name: {"method": "wasserstein", "score": 0.2 if d else 0.01, "drifted": d}
            for name, d in zip(FEATURES, drifted, strict=True)
        },
        "dataset_drifted": dataset,
    }


def _size(
    rows: int, orchard_s: float, evidently_s: float, orchard_peak: float, evidently_peak: float
) -> dict[str, Any]:
    prepare = {
        "buckets": rows // 1_000,
        "bucket_rows": 1_000,
        "build_s": rows / 500_000,
        "build_rows_per_s": 500_000.0,
        "store_s": 0.05,
        "bytes_per_bucket": 57_000.0,
    }
    return {
        "rows": rows,
        "orchard": [
            {
                "bucket_rows": 1_000,
                "prepare": prepare,
                "verdict": _verdict(orchard_s, orchard_peak, (True, False, False, True)),
            }
        ],
        "evidently": _verdict(evidently_s, evidently_peak, (True, False, True, True)),
    }


def _document(orchard_100k_s: float = 0.02, orchard_1m_peak: float = 180.0) -> dict[str, Any]:
    return {
        "machine": {
            "date_utc": "2026-11-27 05:00 UTC",
            "cpu_model": "Test CPU",
            "cores": 2,
            "usable_cores": 2,
            "memory_gib": 8.0,
            "kernel": "6.0",
            "python": "3.11.7",
            "versions": {"evidently": "0.7.23"},
            "load_average_at_start": [0.1, 0.1, 0.1],
            "load_average_at_end": [1.0, 0.5, 0.2],
            "busy_cores_before_start": 0.0,
        },
        "config": {
            "git": "abc1234",
            "quick": False,
            "sizes": [100_000, 1_000_000],
            "bucket_rows": [1_000],
            "reference_rows": 50_000,
            "features": 4,
            "shifted_features": ["a", "d"],
            "orchard_repeats": 5,
            "evidently_repeats": 3,
            "ingest": {"clients": 4, "batch": 500, "duration_s": 10.0, "warmup_s": 2.0},
        },
        "drift": [
            _size(100_000, orchard_100k_s, 5.0, 170.0, 400.0),
            _size(1_000_000, 0.6, 40.0, orchard_1m_peak, 1_500.0),
        ],
        "ingest": {
            "clients": 4,
            "batch": 500,
            "duration_s": 10.0,
            "requests": 60,
            "errors": 0,
            "accepted": 30_000,
            "accepted_per_s": 3_000.0,
            "server_cpu_cores": 1.1,
            "profiled_during_per_s": 2_500.0,
            "profiled_overall_per_s": 2_200.0,
            "catch_up_s": 3.0,
            "caught_up": True,
        },
    }


def test_speed_up_is_evidentlys_time_over_orchards() -> None:
    assert speed_up(_document()["drift"][0]) == pytest.approx(250.0)


def test_agreement_names_the_features_whose_verdicts_differ() -> None:
    size = _document()["drift"][0]

    found = agreement(size["orchard"][0]["verdict"], size["evidently"])

    assert (found.same, found.features, found.differing) == (3, 4, ("c",))
    assert found.dataset_same


def test_targets_met_when_fast_enough_and_memory_flat() -> None:
    verdicts = target_verdicts(_document())

    assert [v.met for v in verdicts] == [True, True]
    assert verdicts[0].measured == "250x"
    assert "Orchard x1.06" in verdicts[1].measured


def test_targets_missed_when_slow_or_memory_grows_with_rows() -> None:
    verdicts = target_verdicts(_document(orchard_100k_s=0.1, orchard_1m_peak=400.0))

    assert [v.met for v in verdicts] == [False, False]
    assert verdicts[0].measured == "50x"


def test_targets_not_shown_without_a_100k_window() -> None:
    document = _document()
    document["drift"] = document["drift"][1:]

    assert [v.met for v in target_verdicts(document)] == [None, None]


def test_markdown_has_the_results_ingest_and_targets() -> None:
    text = markdown(_document())

    assert "| 100,000 | 1,000 | 100 | 20.0 ms (16.0 ms + 4.0 ms) | 5,000.0 ms | 250x " in text
    assert "3/4 features (differ: c); data set same" in text
    assert "| 4 | 500 | 3,000 | 60 | 0 | 1.10 cores | 2,500 | 2,200 |" in text
    assert "- **Met**: Orchard's verdict ≥ 100x faster than Evidently at 100,000 rows" in text


def test_write_report_writes_the_markdown_and_a_chart(tmp_path: Path) -> None:
    written = write_report(_document(), tmp_path)

    assert tmp_path / "evaluation.md" in written
    assert "![verdict time" in (tmp_path / "evaluation.md").read_text()
    assert (tmp_path / "evaluation.png").stat().st_size > 0
