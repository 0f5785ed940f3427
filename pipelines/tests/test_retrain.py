"""Retraining against a real MLflow server: data, holdout, champion, artifacts, registry, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from orchard_pipelines.datasets.credit_risk import FEATURES, generate
from orchard_pipelines.models import digits as digits_model
from orchard_pipelines.profiles import ReferenceProfile
from orchard_pipelines.retrain import RetrainOptions, RetrainResult, main, retrain
from orchard_pipelines.retrain_data import split_for_retraining
from orchard_pipelines.retrain_models import CreditRisk
from orchard_pipelines.train import train_credit_risk

EXPERIMENT = "retrain-tests"
DRIFT_MODEL = "credit-risk-drift"
PROGRESS = re.compile(r"^orchard-progress ([0-9.]+) (.*)$")


@pytest.fixture(scope="module")
def server_url(mlflow_server: Any) -> str:
    return str(mlflow_server.url)


@pytest.fixture
def registry(server_url: str) -> Iterator[MlflowClient]:
    """Point MLflow's global URI at the test server for models:/ URIs, then put it back."""
    previous_uri = mlflow.get_tracking_uri()
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(server_url)
    yield MlflowClient(server_url)
    mlflow.set_tracking_uri(previous_uri)
    if previous_env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_env


def export_rows(frame: pd.DataFrame, inputs: list[str]) -> list[dict[str, Any]]:
    """Rows shaped like evaluation's JSONL export (ids, inputs, an output, the label)."""
    rows = []
    for i, record in enumerate(frame.to_dict(orient="records")):
        rows.append(
            {
                "request_id": f"req-{i}",
                "ts": 1_700_000_000.0 + i,
                "version": "1",
                "route_arm": "stable",
                **{name: record[name] for name in inputs},
                "prediction": 0,
                "label": record["label"],
                "value": None,
                "label_ts": 1_700_000_100.0 + i,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, default=_plain) + "\n" for row in rows))
    return path


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@pytest.fixture(scope="module")
def drifted_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = generate(1_500, seed=11, covariate_shift=1.0, concept_drift=1.0)
    rows = export_rows(frame, list(FEATURES))
    unlabeled = {**rows[0], "request_id": "no-label", "label": None}
    incomplete = {k: v for k, v in rows[1].items() if k != "income"} | {"request_id": "no-income"}
    path = tmp_path_factory.mktemp("export") / "credit-risk.jsonl"
    return write_jsonl(path, [*rows, unlabeled, incomplete])


@pytest.fixture(scope="module")
def drift_result(server_url: str, drifted_export: Path) -> RetrainResult:
    champion = train_credit_risk(
        tracking_uri=server_url,
        experiment=EXPERIMENT,
        registered_model_name=DRIFT_MODEL,
        alias="champion",
        n_rows=3_000,
        seed=7,
    )
    result = retrain(
        RetrainOptions(
            model="credit-risk",
            registered_model_name=DRIFT_MODEL,
            tracking_uri=server_url,
            production_data=str(drifted_export),
            trigger_id="trigger-drift",
            pipeline_run_id="pipeline-drift",
            experiment=EXPERIMENT,
            n_rows=3_000,
            seed=7,
        )
    )
    assert result.champion_version == champion.version
    return result


def holdout_arrays(run_id: str, tmp_path: Path) -> dict[str, np.ndarray]:
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="gate/holdout.npz", dst_path=str(tmp_path)
    )
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.mark.integration
def test_retrained_version_is_registered_without_alias_and_tagged(
    drift_result: RetrainResult, registry: MlflowClient
) -> None:
    version = registry.get_model_version(DRIFT_MODEL, drift_result.version)
    assert version.aliases == []
    assert registry.get_model_version_by_alias(DRIFT_MODEL, "champion").version == (
        drift_result.champion_version
    )
    assert version.run_id == drift_result.run_id
    assert version.tags["orchard.trigger_id"] == "trigger-drift"
    assert version.tags["orchard.pipeline_run_id"] == "pipeline-drift"
    assert version.tags["orchard.mlflow_run_id"] == drift_result.run_id
    assert "orchard.defect" not in version.tags
    assert float(version.tags["roc_auc"]) == drift_result.metrics["roc_auc"]

    run = registry.get_run(drift_result.run_id)
    assert run.data.tags["orchard.model"] == DRIFT_MODEL
    assert run.data.tags["orchard.gate.task"] == "binary"
    assert run.data.tags["orchard.champion_version"] == drift_result.champion_version
    assert run.data.tags["orchard.trigger_id"] == "trigger-drift"
    assert run.data.tags["orchard.pipeline_run_id"] == "pipeline-drift"
    assert run.data.params["holdout_source"] == "production"
    assert run.data.params["production_rows"] == "1500"
    assert run.data.params["production_rows_skipped"] == "2"
    assert run.data.metrics == pytest.approx(drift_result.metrics)
    assert (drift_result.holdout_source, drift_result.holdout_rows) == ("production", 450)
    assert drift_result.production_rows == 1_500


@pytest.mark.integration
def test_profile_and_holdout_are_logged_for_the_gate(
    drift_result: RetrainResult, registry: MlflowClient, tmp_path: Path
) -> None:
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=drift_result.model_uri, dst_path=str(tmp_path / "model")
    )
    run_profile = mlflow.artifacts.download_artifacts(
        run_id=drift_result.run_id,
        artifact_path="reference_profile.json",
        dst_path=str(tmp_path / "run"),
    )
    profiles = [
        ReferenceProfile.from_json(Path(path).read_text())
        for path in (run_profile, Path(model_dir) / "reference_profile.json")
    ]
    assert profiles[0] == profiles[1]
    # 1,050 recent production rows (70 % of 1,500) are enough: they are the new reference.
    assert profiles[0].n_rows == 1_050

    arrays = holdout_arrays(drift_result.run_id, tmp_path)
    assert set(arrays) == {"labels", "candidate", "champion"}
    assert arrays["labels"].shape == arrays["candidate"].shape == arrays["champion"].shape
    assert arrays["labels"].shape == (450,)
    assert set(np.unique(arrays["labels"])) == {0, 1}
    assert ((arrays["candidate"] >= 0) & (arrays["candidate"] <= 1)).all()


@pytest.mark.integration
def test_retrained_model_beats_the_champion_on_drifted_production_data(
    drift_result: RetrainResult, registry: MlflowClient, tmp_path: Path
) -> None:
    arrays = holdout_arrays(drift_result.run_id, tmp_path)
    candidate = roc_auc_score(arrays["labels"], arrays["candidate"])
    champion = roc_auc_score(arrays["labels"], arrays["champion"])

    assert candidate == pytest.approx(drift_result.metrics["roc_auc"])
    assert champion == pytest.approx(drift_result.metrics["champion_roc_auc"])
    assert candidate > champion + 0.05, (candidate, champion)


@pytest.mark.integration
def test_without_production_data_or_champion_the_reference_split_is_the_holdout(
    server_url: str, registry: MlflowClient, tmp_path: Path
) -> None:
    result = retrain(
        RetrainOptions(
            model="credit-risk",
            registered_model_name="credit-risk-first",
            tracking_uri=server_url,
            experiment=EXPERIMENT,
            n_rows=1_500,
        )
    )

    assert (result.holdout_source, result.holdout_rows, result.production_rows) == (
        "reference",
        300,
        0,
    )
    assert result.champion_version is None
    assert result.summary()["champion_version"] is None
    assert "oracle_roc_auc" in result.metrics
    assert not any(name.startswith("champion_") for name in result.metrics)
    arrays = holdout_arrays(result.run_id, tmp_path)
    assert set(arrays) == {"labels", "candidate"}
    assert "orchard.champion_version" not in registry.get_run(result.run_id).data.tags


@pytest.mark.integration
def test_digits_scores_softmax_probabilities_on_a_production_holdout(
    server_url: str, registry: MlflowClient, tmp_path: Path
) -> None:
    pixels, labels = load_digits(return_X_y=True)
    frame = pd.DataFrame({"pixels": list(pixels[:300].tolist()), "label": labels[:300]})
    export = write_jsonl(tmp_path / "digits.jsonl", export_rows(frame, ["pixels"]))

    result = retrain(
        RetrainOptions(
            model="digits",
            registered_model_name="digits-retrain",
            tracking_uri=server_url,
            experiment=EXPERIMENT,
            production_data=str(export),
            digits_config=digits_model.TrainingConfig(epochs=2),
        )
    )

    assert (result.holdout_source, result.holdout_rows, result.production_rows) == (
        "production",
        90,
        300,
    )
    arrays = holdout_arrays(result.run_id, tmp_path)
    assert arrays["candidate"].shape == (90, 10)
    np.testing.assert_allclose(arrays["candidate"].sum(axis=1), 1.0, rtol=1e-6)
    assert registry.get_run(result.run_id).data.tags["orchard.gate.task"] == "multiclass"


@pytest.mark.integration
def test_cli_reports_progress_on_stderr_and_json_last_on_stdout(
    server_url: str, registry: MlflowClient
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchard_pipelines.retrain",
            "--model=credit-risk",
            f"--tracking-uri={server_url}",
            f"--experiment={EXPERIMENT}",
            "--n-rows=1500",
            "--trigger-id=cli-trigger",
            "--pipeline-run-id=cli-pipeline",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    progress = [m.groups() for m in map(PROGRESS.match, completed.stderr.splitlines()) if m]
    fractions = [float(fraction) for fraction, _ in progress]
    stages = [stage for _, stage in progress]
    assert fractions == sorted(fractions)
    assert {
        "loading data",
        "training",
        "evaluating on the holdout",
        "logging to MLflow",
        "registering",
    } <= set(stages)
    assert progress[-1] == ("1.00", "done")
    (line,) = completed.stdout.strip().splitlines()  # library chatter went to stderr
    summary = json.loads(line)
    assert set(summary) == {
        "model",
        "version",
        "run_id",
        "model_uri",
        "metrics",
        "champion_version",
        "holdout",
        "production_rows",
    }
    assert summary["model"] == "credit-risk"
    assert summary["model_uri"] == f"models:/credit-risk/{summary['version']}"
    assert summary["holdout"] == {"rows": 300, "source": "reference"}
    assert summary["production_rows"] == 0
    version = registry.get_model_version("credit-risk", summary["version"])
    assert version.tags["orchard.pipeline_run_id"] == "cli-pipeline"
    run_tags = registry.get_run(summary["run_id"]).data.tags
    assert summary["champion_version"] == run_tags.get("orchard.champion_version")


def versions_of_pipeline_run(registry: MlflowClient, pipeline_run_id: str) -> list[str]:
    return [
        v.version
        for v in registry.search_model_versions("name = 'credit-risk'")
        if v.tags.get("orchard.pipeline_run_id") == pipeline_run_id
    ]


@pytest.mark.integration
@pytest.mark.parametrize("source", ["refused-url", "garbage-file"])
def test_unreadable_production_data_exits_2_and_registers_nothing(
    source: str,
    server_url: str,
    registry: MlflowClient,
    free_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if source == "refused-url":
        production, expected = f"http://127.0.0.1:{free_port}/v1/exports/credit-risk", "refused"
    else:
        garbage = tmp_path / "export.jsonl"
        garbage.write_bytes(b"\x00\xff{not json at all\n")
        production, expected = str(garbage), "line 1 is not JSON"

    code = main(
        [
            "--model=credit-risk",
            f"--tracking-uri={server_url}",
            f"--experiment={EXPERIMENT}",
            f"--production-data={production}",
            f"--pipeline-run-id=unreadable-{source}",
            "--json",
        ]
    )

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert "production data" in error
    assert expected in error
    assert versions_of_pipeline_run(registry, f"unreadable-{source}") == []


@pytest.mark.integration
def test_a_failure_after_registration_deletes_the_new_version(
    server_url: str,
    registry: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def registry_gone(self: MlflowClient, name: str, version: str) -> None:
        raise MlflowException(f"injected: the registry lost {name} version {version}")

    monkeypatch.setattr(MlflowClient, "get_model_version", registry_gone)
    code = main(
        [
            "--model=credit-risk",
            f"--tracking-uri={server_url}",
            f"--experiment={EXPERIMENT}",
            "--n-rows=1500",
            "--pipeline-run-id=half-registered",
        ]
    )
    monkeypatch.undo()

    assert code == 1
    stderr = capsys.readouterr().err
    assert "deleted half-registered version" in stderr
    assert "error: injected: the registry lost credit-risk version" in stderr
    assert versions_of_pipeline_run(registry, "half-registered") == []


@pytest.mark.integration
def test_defective_candidate_is_scored_for_real_but_fails_wherever_it_is_loaded(
    server_url: str, registry: MlflowClient, tmp_path: Path
) -> None:
    result = retrain(
        RetrainOptions(
            model="credit-risk",
            registered_model_name="credit-risk-defect",
            tracking_uri=server_url,
            experiment=EXPERIMENT,
            n_rows=1_500,
            defect="errors",
        )
    )
    assert result.metrics["roc_auc"] > 0.7  # the real model scored the holdout
    version = registry.get_model_version("credit-risk-defect", result.version)
    assert version.tags["orchard.defect"] == "errors"
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=result.model_uri, dst_path=str(tmp_path / "model")
    )
    rows = tmp_path / "rows.json"
    generate(5, seed=3)[list(FEATURES)].to_json(rows, orient="records")

    # The inference runtime has no Orchard code: make importing it fail in the child.
    script = textwrap.dedent(
        """
        import json, sys
        sys.modules["orchard_pipelines"] = None
        import mlflow.sklearn, pandas as pd
        from sklearn.base import is_classifier
        model = mlflow.sklearn.load_model(sys.argv[1])
        rows = pd.read_json(sys.argv[2], orient="records")
        errors = []
        for method in (model.predict, model.predict_proba):
            try:
                method(rows)
            except RuntimeError as exc:
                errors.append(str(exc))
        loaded = [m for m in sys.modules if m.startswith("orchard") and sys.modules[m]]
        print(json.dumps({"errors": errors, "loaded": loaded, "clf": is_classifier(model)}))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, model_dir, str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert len(report["errors"]) == 2
    assert all(error.startswith("injected defect: ") for error in report["errors"])
    assert report["loaded"] == []
    assert report["clf"] is True


def test_cli_rejects_a_defect_for_digits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--model=digits", "--defect=errors"])
    assert exited.value.code == 2
    assert "--defect is supported for --model credit-risk only" in capsys.readouterr().err


def test_production_rows_are_kept_only_whole_and_cast_to_the_signature() -> None:
    (good,) = export_rows(generate(1, seed=3), list(FEATURES))
    rows = [
        good,
        {**good, "age": "35", "label": "0"},  # numbers as strings still parse
        {**good, "age": 35.5},  # not an integer
        {**good, "label": None},
        {**good, "label": 2},  # not a class of a binary model
        {**good, "label": True},
        {**good, "income": None},
        {k: v for k, v in good.items() if k != "loan_purpose"},
    ]

    frame, skipped = CreditRisk().production(rows)

    assert (len(frame), skipped) == (2, 6)
    assert frame["age"].tolist() == [good["age"], 35]
    assert frame["label"].tolist() == [good["label"], 0]
    assert frame["age"].dtype == np.int64
    assert frame["label"].dtype == np.int64
    assert frame["income"].dtype == np.float64
    assert frame["loan_purpose"].tolist() == [good["loan_purpose"]] * 2


@pytest.mark.parametrize(
    ("production_rows", "source", "holdout_rows", "train_rows"),
    [(199, "reference", 200, 800 + 199), (200, "production", 60, 1_000 + 140)],
)
def test_the_holdout_comes_from_production_once_there_is_enough_of_it(
    production_rows: int, source: str, holdout_rows: int, train_rows: int
) -> None:
    reference = generate(1_000, seed=1)
    production = generate(production_rows, seed=2, covariate_shift=1.0)

    data = split_for_retraining(reference, production, features=FEATURES, seed=0)

    assert (data.holdout_source, len(data.holdout), len(data.train)) == (
        source,
        holdout_rows,
        train_rows,
    )
    weights = data.balanced_weights()
    reference_weight = weights[: data.reference_train_rows].sum()
    assert reference_weight == pytest.approx(weights[data.reference_train_rows :].sum())
    assert reference_weight == data.reference_train_rows
