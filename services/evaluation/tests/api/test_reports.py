"""Evidently HTML reports: on demand, on schedule, listed and downloadable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchard_core.profiles import ReferenceProfile
from orchard_evaluation import reports
from orchard_evaluation.reports import (
    Reporter,
    ReportLimits,
    reference_frame,
    report_active_versions,
    report_periodically,
)

from ..conftest import Evaluation, MakeEvaluation
from ..factories import event, reference_profile

T0 = 1_700_000_040.0
FEATURES = ("age", "income", "employment_type")


def _events(n: int, t0: float, version: str = "1", age_shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    ages = rng.integers(18, 80, n) + age_shift
    incomes = rng.lognormal(10.8, 0.5, n)
    kinds = rng.choice(["salaried", "self_employed", "contract"], n)
    return [
        event(
            f"{version}-{t0}-{i}",
            version=version,
            ts=t0 + i * (120.0 / n),
            inputs={
                "age": [float(ages[i])],
                "income": [float(incomes[i])],
                "employment_type": [str(kinds[i])],
            },
            outputs={"prediction": [1]},
        )
        for i in range(n)
    ]


async def _setup(evaluation: Evaluation, version: str = "1") -> None:
    put = await evaluation.client.put(
        f"/v1/profiles/credit-risk/{version}", json={"profile": reference_profile(n=3_000)}
    )
    assert put.status_code == 201, put.text


def _html_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.html")) if folder.exists() else []


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    return tmp_path / "reports"


async def test_a_report_on_demand_is_listed_and_downloads(
    make_evaluation: MakeEvaluation, reports_dir: Path
) -> None:
    async with make_evaluation(reports_dir=str(reports_dir)) as evaluation:
        await _setup(evaluation)
        posted = await evaluation.client.post("/v1/events", json=_events(800, T0, age_shift=25))
        assert posted.status_code < 300, posted.text

        made = await evaluation.client.post(
            "/v1/reports",
            json={"model": "credit-risk", "version": "1", "since": T0, "until": T0 + 600},
        )
        assert made.status_code == 201, made.text
        record = made.json()
        assert record["status"] == "ready"
        assert record["trigger"] == "on_demand"
        assert record["reference"] == "resampled from the reference profile (marginals only)"
        assert record["n_reference_rows"] == 3_000
        assert record["n_current_rows"] == 800
        assert record["current_capped"] is False
        files = _html_files(reports_dir)
        assert len(files) == 1
        assert "reference-resampled-from-profile" in files[0].name
        assert record["size_bytes"] == files[0].stat().st_size

        listed = (
            await evaluation.client.get("/v1/reports", params={"model": "credit-risk"})
        ).json()
        assert [r["id"] for r in listed["reports"]] == [record["id"]]
        assert (await evaluation.client.get(f"/v1/reports/{record['id']}")).json() == record

        page = await evaluation.client.get(record["html"])
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-disposition"].startswith("attachment")
        for name in (*FEATURES, "prediction"):
            assert name in page.text
        assert "resampled from the reference profile" in page.text


async def test_reports_are_listed_newest_first_per_version(
    make_evaluation: MakeEvaluation, reports_dir: Path
) -> None:
    async with make_evaluation(reports_dir=str(reports_dir)) as evaluation:
        await _setup(evaluation)
        await evaluation.client.post("/v1/events", json=_events(200, T0))
        body = {"model": "credit-risk", "version": "1"}
        first = (await evaluation.client.post("/v1/reports", json=body)).json()
        second = (await evaluation.client.post("/v1/reports", json=body)).json()
        listed = await evaluation.client.get("/v1/reports", params=body)
        assert [r["id"] for r in listed.json()["reports"]] == [second["id"], first["id"]]
        other = await evaluation.client.get("/v1/reports", params={**body, "version": "2"})
        assert other.json()["reports"] == []


async def test_what_cannot_be_reported_is_refused(
    make_evaluation: MakeEvaluation, reports_dir: Path
) -> None:
    async with make_evaluation(reports_dir=str(reports_dir)) as evaluation:
        await _setup(evaluation)
        client = evaluation.client
        unknown = await client.post("/v1/reports", json={"model": "credit-risk", "version": "9"})
        assert unknown.status_code == 404
        assert "no reference profile" in unknown.json()["error"]

        empty = await client.post(
            "/v1/reports",
            json={"model": "credit-risk", "version": "1", "since": T0, "until": T0 + 60},
        )
        assert empty.status_code == 400
        assert "nothing to report" in empty.json()["error"]

        backwards = await client.post(
            "/v1/reports",
            json={"model": "credit-risk", "version": "1", "since": T0 + 60, "until": T0},
        )
        assert backwards.status_code == 400
        assert (await client.post("/v1/reports", json={"version": "1"})).status_code == 400

        assert (await client.get("/v1/reports/999")).status_code == 404
        assert (await client.get("/v1/reports/999/html")).status_code == 404
        assert (await client.get("/v1/reports")).json()["reports"] == []  # refusals leave none
        assert _html_files(reports_dir) == []


async def test_a_scheduled_pass_reports_each_active_version(
    make_evaluation: MakeEvaluation, reports_dir: Path
) -> None:
    now = time.time()
    async with make_evaluation(
        reports_dir=str(reports_dir), profile_interval_s=3_600
    ) as evaluation:
        for version in ("1", "2"):
            await _setup(evaluation, version)
            await evaluation.client.post("/v1/events", json=_events(300, now - 600, version))
        await _setup(evaluation, "3")  # a version without traffic gets no report
        evaluation.app.state.profiler.run_once()

        state = evaluation.app.state
        reporter = Reporter(state.database, state.references, reports_dir)
        made = report_active_versions(reporter, state.windows, now - 3_600, now + 60)

        assert sorted(r.version for r in made) == ["1", "2"]
        listed = (await evaluation.client.get("/v1/reports")).json()["reports"]
        assert {(r["version"], r["trigger"], r["status"]) for r in listed} == {
            ("1", "scheduled", "ready"),
            ("2", "scheduled", "ready"),
        }
        assert len(_html_files(reports_dir)) == 2


async def test_a_failing_generation_is_recorded_as_failed(
    make_evaluation: MakeEvaluation, reports_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> str:
        raise RuntimeError("evidently broke")

    monkeypatch.setattr(reports, "_evidently_html", broken)
    now = time.time()
    async with make_evaluation(
        reports_dir=str(reports_dir), profile_interval_s=3_600
    ) as evaluation:
        await _setup(evaluation)
        await evaluation.client.post("/v1/events", json=_events(100, now - 600))
        evaluation.app.state.profiler.run_once()

        on_demand = await evaluation.client.post(
            "/v1/reports", json={"model": "credit-risk", "version": "1"}
        )
        assert on_demand.status_code == 500
        assert "evidently broke" in on_demand.json()["error"]

        state = evaluation.app.state
        reporter = Reporter(state.database, state.references, reports_dir)
        assert report_active_versions(reporter, state.windows, now - 3_600, now + 60) == []

        listed = (await evaluation.client.get("/v1/reports")).json()["reports"]
        assert [(r["trigger"], r["status"]) for r in listed] == [
            ("scheduled", "failed"),
            ("on_demand", "failed"),
        ]
        assert all("evidently broke" in r["error"] and r["html"] is None for r in listed)
        assert (
            await evaluation.client.get(f"/v1/reports/{listed[0]['id']}/html")
        ).status_code == 404


async def test_a_large_window_is_capped_to_its_newest_rows_and_says_so(
    make_evaluation: MakeEvaluation, reports_dir: Path
) -> None:
    async with make_evaluation(reports_dir=str(reports_dir)) as evaluation:
        await _setup(evaluation)
        await evaluation.client.post("/v1/events", json=_events(300, T0))
        state = evaluation.app.state
        limits = ReportLimits(reference_rows=500, current_rows=100)
        row = Reporter(state.database, state.references, reports_dir, limits).generate(
            "credit-risk", "1"
        )
        record = (await evaluation.client.get(f"/v1/reports/{row.id}")).json()
        assert (record["n_current_rows"], record["n_window_rows"]) == (100, 300)
        assert record["n_reference_rows"] == 500
        assert record["current_capped"] is True
        assert record["current"] == "the newest 100 of the window's 300 rows"


async def test_an_interval_of_zero_disables_scheduled_reports(
    evaluation: Evaluation, reports_dir: Path
) -> None:
    state = evaluation.app.state
    reporter = Reporter(state.database, state.references, reports_dir)
    await report_periodically(reporter, state.windows, 0)  # returns at once


def test_the_reference_is_resampled_from_the_profile_marginals() -> None:
    profile = ReferenceProfile.from_dict(reference_profile(n=5_000, seed=3))
    frame = reference_frame(profile, 5_000)
    assert list(frame.columns) == [*FEATURES, "prediction"]

    income = profile.features["income"]
    for level in ("0.1", "0.5", "0.9"):
        expected = income.quantiles[level]  # type: ignore[union-attr]
        assert np.quantile(frame["income"], float(level)) == pytest.approx(expected, rel=0.03)
    kinds = profile.features["employment_type"].value_counts  # type: ignore[union-attr]
    shares = frame["employment_type"].value_counts(normalize=True)
    for kind, count in kinds.items():
        assert shares[kind] == pytest.approx(count / 5_000, abs=0.002)
    assert set(frame["age"].unique()) <= set(range(18, 80))  # exact counts: only real values
    assert reference_frame(profile, 100).equals(reference_frame(profile, 100))  # fixed seed
