"""Training against a real MLflow server: registry, aliases, artifacts, signatures, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.models
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from torch import nn

from orchard_pipelines.datasets.credit_risk import FEATURES, generate
from orchard_pipelines.errors import TrackingServerUnavailable
from orchard_pipelines.models import credit_risk as credit_model
from orchard_pipelines.models import digits as digits_model
from orchard_pipelines.profiles import ReferenceProfile
from orchard_pipelines.tracking import TrainingResult
from orchard_pipelines.train import main, train_credit_risk, train_digits

pytestmark = pytest.mark.integration

EXPERIMENT = "pipelines-tests"


@pytest.fixture(scope="module")
def server_url(mlflow_server: Any) -> str:
    return str(mlflow_server.url)


@pytest.fixture(scope="module")
def credit(server_url: str) -> TrainingResult[Pipeline]:
    return train_credit_risk(tracking_uri=server_url, experiment=EXPERIMENT, n_rows=3_000, seed=7)


@pytest.fixture(scope="module")
def digits(server_url: str) -> TrainingResult[nn.Sequential]:
    return train_digits(
        tracking_uri=server_url,
        experiment=EXPERIMENT,
        seed=7,
        config=digits_model.TrainingConfig(epochs=5),
    )


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


@pytest.mark.parametrize("result_name", ["credit", "digits"])
def test_version_is_registered_with_champion_alias_and_metric_tags(
    result_name: str, registry: MlflowClient, request: pytest.FixtureRequest
) -> None:
    result: TrainingResult[object] = request.getfixturevalue(result_name)

    version = registry.get_model_version_by_alias(result.name, "champion")
    assert version.version == result.version
    assert version.run_id == result.run_id
    assert result.model_uri == f"models:/{result.name}/{result.version}"
    for metric, value in result.metrics.items():
        assert float(version.tags[metric]) == value
    assert registry.get_run(result.run_id).data.metrics == pytest.approx(result.metrics)


@pytest.mark.parametrize("result_name", ["credit", "digits"])
def test_reference_profile_is_stored_in_the_run_and_next_to_the_model(
    result_name: str, registry: MlflowClient, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    result: TrainingResult[object] = request.getfixturevalue(result_name)

    run_copy = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="reference_profile.json", dst_path=str(tmp_path / "r")
    )
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{result.name}/{result.version}", dst_path=str(tmp_path / "m")
    )
    for path in (Path(run_copy), Path(model_dir) / "reference_profile.json"):
        profile = ReferenceProfile.from_json(path.read_text())
        assert profile == result.profile
        assert json.loads(path.read_text())["schema"] == "orchard.reference_profile/v2"
        assert "prediction" in profile.outputs


def test_credit_risk_signature_and_served_predictions(
    credit: TrainingResult[Pipeline], registry: MlflowClient
) -> None:
    info = mlflow.models.get_model_info("models:/credit-risk@champion")
    assert info.signature == credit_model.signature()

    frame = generate(200, seed=99, covariate_shift=0.5)[list(FEATURES)]
    served = mlflow.pyfunc.load_model("models:/credit-risk@champion").predict(frame)

    np.testing.assert_array_equal(np.asarray(served), credit.model.predict(frame))


def test_digits_signature_and_loaded_logits(
    digits: TrainingResult[nn.Sequential], registry: MlflowClient
) -> None:
    info = mlflow.models.get_model_info("models:/digits@champion")
    assert info.signature == digits_model.signature()
    assert info.metadata == {"input_name": "pixels", "output_name": "logits"}

    pixels = load_digits().data.astype(np.float32)[:50]
    loaded = mlflow.pytorch.load_model("models:/digits@champion")
    expected = digits_model.predict_logits(digits.model, pixels)

    assert isinstance(loaded, nn.Sequential)
    np.testing.assert_allclose(digits_model.predict_logits(loaded, pixels), expected, rtol=1e-6)
    served = mlflow.pyfunc.load_model("models:/digits@champion").predict(pixels)
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-6)


def test_training_leaves_the_global_tracking_uri_alone(server_url: str) -> None:
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    train_digits(
        tracking_uri=server_url,
        experiment=EXPERIMENT,
        registered_model_name="digits-scratch",
        alias=None,
        config=digits_model.TrainingConfig(epochs=1),
    )
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before


def test_cli_prints_a_json_summary_last(
    server_url: str, registry: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--model=credit-risk",
            f"--tracking-uri={server_url}",
            f"--experiment={EXPERIMENT}",
            "--n-rows=1500",
            "--alias=challenger",
            "--json",
        ]
    )

    assert code == 0
    captured = capsys.readouterr()
    assert "credit-risk: registered credit-risk version" in captured.err
    (summary,) = json.loads(captured.out.strip().splitlines()[-1])["models"]
    assert set(summary) == {"name", "version", "run_id", "model_uri", "metrics"}
    assert summary["model_uri"] == f"models:/credit-risk/{summary['version']}"
    assert set(summary["metrics"]) >= {"accuracy", "roc_auc", "log_loss", "brier"}
    assert (
        registry.get_model_version_by_alias("credit-risk", "challenger").version
        == (summary["version"])
    )


def test_cli_reports_an_unreachable_server_in_one_line(free_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchard_pipelines.train",
            "--model=digits",
            "--json",
            f"--tracking-uri=http://127.0.0.1:{free_port}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: MLflow tracking server at http://127.0.0.1:")
    assert "unreachable" in lines[0]


def test_python_api_raises_for_an_unreachable_server(free_port: int) -> None:
    with pytest.raises(TrackingServerUnavailable, match="unreachable"):
        train_credit_risk(tracking_uri=f"http://127.0.0.1:{free_port}", n_rows=100)


def test_cli_rejects_too_few_rows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--model=credit-risk", "--n-rows=10"])
    assert exited.value.code == 2
    assert "--n-rows: must be at least 50" in capsys.readouterr().err
