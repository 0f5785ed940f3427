"""How each service is launched, the routes file, the registry check and the training result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from orchard_cli.platform import (
    LOCAL_TIMESCALES,
    PlatformConfig,
    PlatformError,
    champion_versions,
    evaluation_spec,
    example_curl,
    gateway_spec,
    inference_spec,
    missing_modules,
    mlflow_spec,
    parse_training_output,
    retraining_spec,
    training_spec,
)


@pytest.fixture(autouse=True)
def _no_user_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOCAL_TIMESCALES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cfg(tmp_path: Path) -> PlatformConfig:
    return PlatformConfig(
        data_dir=tmp_path,
        mlflow_port=5100,
        inference_port=8180,
        evaluation_port=8102,
        retraining_port=8103,
        gateway_port=8100,
    )


def _timescales(prefix: str) -> dict[str, str]:
    return {k: v for k, (v, _) in LOCAL_TIMESCALES.items() if k.startswith(prefix)}


def test_mlflow_keeps_its_database_and_artifacts_in_the_data_folder(cfg: PlatformConfig):
    spec = mlflow_spec(cfg)

    assert spec.argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    flags = dict(zip(spec.argv[4::2], spec.argv[5::2], strict=True))
    assert flags == {
        "--backend-store-uri": f"sqlite:///{cfg.data_dir}/mlflow/mlflow.db",
        "--artifacts-destination": f"{cfg.data_dir}/mlflow/artifacts",
        "--host": "127.0.0.1",
        "--port": "5100",
        "--workers": "1",
    }
    assert spec.ready_url == "http://127.0.0.1:5100/health"


def test_training_reports_to_the_local_mlflow(cfg: PlatformConfig):
    spec = training_spec(cfg)

    assert spec.argv == [
        sys.executable, "-m", "orchard_pipelines.train",
        "--model", "all", "--tracking-uri", "http://127.0.0.1:5100", "--json",
    ]  # fmt: skip
    assert spec.capture_stdout


def test_the_runtime_serves_each_demo_models_champion(cfg: PlatformConfig):
    spec = inference_spec(cfg)

    assert spec.argv == [sys.executable, "-m", "orchard_inference"]
    assert spec.env["ORCHARD_INFERENCE_HOST"] == "127.0.0.1"
    assert spec.env["ORCHARD_INFERENCE_PORT"] == "8180"
    assert spec.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5100"
    assert json.loads(spec.env["ORCHARD_INFERENCE_MODELS"]) == {
        "credit-risk": "models:/credit-risk@champion",
        "digits": "models:/digits@champion",
    }
    assert spec.ready_url == "http://127.0.0.1:8180/v2/health/ready"


def test_evaluation_keeps_its_database_in_the_data_folder_and_reads_the_local_mlflow(
    cfg: PlatformConfig,
):
    spec = evaluation_spec(cfg)

    assert spec.argv == [sys.executable, "-m", "orchard_evaluation"]
    assert spec.env == {
        "ORCHARD_EVALUATION_HOST": "127.0.0.1",
        "ORCHARD_EVALUATION_PORT": "8102",
        "ORCHARD_EVALUATION_DATABASE_URL": f"sqlite:///{cfg.data_dir}/evaluation.db",
        "ORCHARD_EVALUATION_REPORTS_DIR": str(cfg.data_dir / "reports"),
        "ORCHARD_EVALUATION_RETRAINING_URL": "http://127.0.0.1:8103",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5100",
        **_timescales("ORCHARD_EVALUATION_"),
    }
    assert spec.ready_url == "http://127.0.0.1:8102/readyz"
    assert spec.cwd == cfg.data_dir


def test_the_gateway_polls_its_routes_from_retraining_and_keeps_jobs_in_the_data_dir(
    cfg: PlatformConfig,
):
    spec = gateway_spec(cfg)

    assert spec.argv == [sys.executable, "-m", "orchard_gateway"]
    assert spec.env == {
        "ORCHARD_GATEWAY_HOST": "127.0.0.1",
        "ORCHARD_GATEWAY_PORT": "8100",
        "ORCHARD_GATEWAY_ROUTES_URL": "http://127.0.0.1:8103/v1/routes",
        "ORCHARD_GATEWAY_JOBS_DIR": str(cfg.data_dir / "jobs"),
        "ORCHARD_GATEWAY_EVALUATION_URL": "http://127.0.0.1:8102",
        "ORCHARD_GATEWAY_ROUTES_POLL_S": "1",
        "ORCHARD_GATEWAY_EVENTS_FLUSH_INTERVAL_S": "0.5",
    }
    assert spec.ready_url == "http://127.0.0.1:8100/readyz"


def test_retraining_runs_pipelines_locally_and_serves_candidates_from_the_runtime(
    cfg: PlatformConfig,
):
    spec = retraining_spec(cfg)

    assert spec.argv == [sys.executable, "-m", "orchard_retraining"]
    assert spec.env == {
        "ORCHARD_RETRAINING_HOST": "127.0.0.1",
        "ORCHARD_RETRAINING_PORT": "8103",
        "ORCHARD_RETRAINING_DATABASE_URL": f"sqlite:///{cfg.data_dir}/retraining.db",
        "ORCHARD_RETRAINING_RUNS_DIR": str(cfg.data_dir / "runs"),
        "ORCHARD_RETRAINING_MLFLOW_TRACKING_URI": "http://127.0.0.1:5100",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5100",
        "ORCHARD_RETRAINING_EVALUATION_URL": "http://127.0.0.1:8102",
        "ORCHARD_RETRAINING_RUNTIME_URL": "http://127.0.0.1:8180",
        "ORCHARD_RETRAINING_MODELS": '["credit-risk", "digits"]',
        "ORCHARD_RETRAINING_TRAFFIC_BACKEND": "local",
        "ORCHARD_RETRAINING_PIPELINE_BACKEND": "local",
        **_timescales("ORCHARD_RETRAINING_"),
    }
    assert spec.ready_url == "http://127.0.0.1:8103/readyz"
    assert spec.cwd == cfg.data_dir


def test_the_local_platform_runs_at_compressed_timescales(cfg: PlatformConfig):
    evaluation = evaluation_spec(cfg).env
    rollout = json.loads(retraining_spec(cfg).env["ORCHARD_RETRAINING_ROLLOUT_DEFAULTS"])

    assert evaluation["ORCHARD_EVALUATION_MONITOR_INTERVAL_S"] == "10"
    assert evaluation["ORCHARD_EVALUATION_DRIFT_MIN_ROWS"] == "500"
    # evaluation refuses a rollup that is not a whole number of buckets
    rollup, bucket = (int(evaluation[f"ORCHARD_EVALUATION_{n}"]) for n in ("ROLLUP_S", "BUCKET_S"))
    assert rollup % bucket == 0
    assert rollout["steps"] == [20, 50, 100]
    assert rollout["step_interval_s"] <= rollout["max_wait_s"]


def test_a_timescale_the_user_set_is_left_to_the_users_environment(
    cfg: PlatformConfig, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ORCHARD_EVALUATION_MONITOR_INTERVAL_S", "300")
    monkeypatch.setenv("ORCHARD_RETRAINING_ROLLOUT_DEFAULTS", '{"steps": [5, 100]}')

    assert "ORCHARD_EVALUATION_MONITOR_INTERVAL_S" not in evaluation_spec(cfg).env
    assert "ORCHARD_RETRAINING_ROLLOUT_DEFAULTS" not in retraining_spec(cfg).env
    assert evaluation_spec(cfg).env["ORCHARD_EVALUATION_BUCKET_S"] == "10"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::"])
def test_the_gateway_logs_to_the_evaluation_that_orchard_up_starts(tmp_path: Path, host: str):
    cfg = PlatformConfig(tmp_path / "data", host=host, evaluation_port=9002)
    evaluation = evaluation_spec(cfg)

    evaluation_url = gateway_spec(cfg).env["ORCHARD_GATEWAY_EVALUATION_URL"]

    assert evaluation.ready_url == f"{evaluation_url}/readyz"
    assert evaluation_url.endswith(":9002")
    database = evaluation.env["ORCHARD_EVALUATION_DATABASE_URL"].removeprefix("sqlite:///")
    assert Path(database).parent == cfg.data_dir


def test_every_port_is_named_by_its_option(cfg: PlatformConfig):
    assert cfg.ports == {
        "--mlflow-port": 5100,
        "--inference-port": 8180,
        "--evaluation-port": 8102,
        "--retraining-port": 8103,
        "--gateway-port": 8100,
    }


def test_clients_reach_a_wildcard_bind_on_loopback(tmp_path: Path):
    assert PlatformConfig(tmp_path, host="0.0.0.0").gateway_url == "http://127.0.0.1:8000"
    assert PlatformConfig(tmp_path, host="::").gateway_url == "http://[::1]:8000"


def _registry(status_by_model: dict[str, int]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/2.0/mlflow/registered-models/alias"
        assert request.url.params["alias"] == "champion"
        name = request.url.params["name"]
        status = status_by_model[name]
        if status == 200:
            return httpx.Response(200, json={"model_version": {"name": name, "version": "2"}})
        return httpx.Response(status, json={"error_code": "RESOURCE_DOES_NOT_EXIST"})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_champion_versions_says_which_models_need_training():
    with _registry({"credit-risk": 200, "digits": 404}) as client:
        assert champion_versions(client, "http://mlflow") == {"credit-risk": "2", "digits": None}


def test_a_registry_error_is_not_mistaken_for_a_missing_model():
    with _registry({"credit-risk": 500}) as client, pytest.raises(PlatformError, match="500"):
        champion_versions(client, "http://mlflow", ["credit-risk"])


def test_the_training_result_is_the_last_stdout_line():
    result = {
        "models": [
            {
                "name": "digits",
                "version": "1",
                "run_id": "abc",
                "model_uri": "models:/digits/1",
                "metrics": {"accuracy": 0.97},
            }
        ]
    }

    (model,) = parse_training_output(["some chatter", json.dumps(result), ""])

    assert (model.name, model.version, model.metrics) == ("digits", "1", {"accuracy": 0.97})


@pytest.mark.parametrize("stdout", [[], ["not json"], ['{"no": "models"}']])
def test_a_bad_training_result_is_an_error(stdout: list[str]):
    with pytest.raises(PlatformError, match="training"):
        parse_training_output(stdout)


def test_the_example_request_matches_the_models_inputs(cfg: PlatformConfig):
    metadata = {
        "name": "digits",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 4]}],
    }
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=metadata))
    )

    curl = example_curl(client, cfg)

    assert curl.startswith("curl -s -X POST http://127.0.0.1:8100/v2/models/digits/infer ")
    body = json.loads(curl.split(" -d ")[1].strip("'"))
    assert body == {
        "inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]
    }


def test_a_missing_service_is_named_with_the_package_that_provides_it(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr("orchard_cli.platform._module_exists", lambda module: False)

    missing = missing_modules()

    assert "orchard_evaluation.__main__ (package orchard-evaluation)" in missing
    assert "orchard_gateway.__main__ (package orchard-gateway)" in missing
    assert "orchard_retraining.__main__ (package orchard-retraining)" in missing


def test_modules_that_are_not_installed_are_listed():
    assert missing_modules(["json", "json.decoder", "orchard_cli.nope", "nope_pkg.mod"]) == [
        "orchard_cli.nope (package orchard_cli)",
        "nope_pkg.mod (package nope_pkg)",
    ]
