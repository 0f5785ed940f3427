"""docker-compose.yml, checked as text (no Docker engine in CI's test job): every build and
mount exists, every ORCHARD_* variable is a real setting, ports do not collide, Orchard
services run hardened, and the compose copies of the monitoring configs differ from the
originals only in where they point.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from orchard_core import load_settings
from orchard_evaluation.settings import EvaluationSettings
from orchard_gateway.settings import GatewaySettings
from orchard_inference.settings import InferenceSettings
from orchard_retraining.settings import RetrainingSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MONITORING = ROOT / "monitoring"
SETTINGS: dict[str, type[BaseSettings]] = {
    "GATEWAY": GatewaySettings,
    "INFERENCE": InferenceSettings,
    "EVALUATION": EvaluationSettings,
    "RETRAINING": RetrainingSettings,
}
ORCHARD_SERVICES = {"gateway", "inference", "evaluation", "retraining"}
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(value: str) -> str:
    """A value as compose fills it from .env (.env.example's values)."""
    env = _env_example()

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        assert default is not None, f"${{{name}}} is never set"
        assert ":-" in match.group(0), f"${{{name}}} is required and missing from .env.example"
        return default

    return VARIABLE.sub(fill, value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {key: _interpolate(str(value)) for key, value in env.items()}


def test_every_variable_compose_reads_is_in_env_example() -> None:
    example = _env_example()
    for name, default in VARIABLE.findall(COMPOSE_FILE.read_text()):
        assert name in example or default, name
    # Examples only, never a real secret.
    assert example["POSTGRES_PASSWORD"] == "change-me-local-only"
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_every_build_uses_an_existing_dockerfile_and_every_service_an_image() -> None:
    for name, service in _services().items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is None:
            assert ":" in service["image"], f"{name}: pin the image's tag"
            assert not service["image"].endswith(":latest"), name
            continue
        context = ROOT / build["context"]
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), name
        target = build.get("target")
        if target:
            assert re.search(rf"^FROM \S+ AS {target}$", dockerfile.read_text(), re.MULTILINE)


def test_every_mounted_host_path_exists() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], name


def test_host_ports_do_not_collide() -> None:
    published = []
    for service in _services().values():
        for port in service.get("ports", []):
            published.append(str(port).split(":")[-2])
    assert len(published) == len(set(published)), published


@pytest.mark.parametrize("name", sorted(ORCHARD_SERVICES))
def test_orchard_services_run_hardened_and_listen_where_they_are_reached(name: str) -> None:
    service = _services()[name]
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]
    user = str(service["user"]).split(":")[0]
    assert user.isdigit()
    assert user != "0"
    env = _environment(service)
    port = env[f"ORCHARD_{name.upper()}_PORT"]
    assert env[f"ORCHARD_{name.upper()}_HOST"] == "0.0.0.0"
    assert any(str(p).endswith(f":{port}") for p in service["ports"])
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    for dependency, condition in service.get("depends_on", {}).items():
        assert dependency in _services()
        assert condition["condition"] in {"service_healthy", "service_started"}


@pytest.mark.parametrize("name", sorted(ORCHARD_SERVICES))
def test_every_orchard_variable_is_a_setting_that_validates(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _environment(_services()[name])
    for key in list(os.environ):
        if key.startswith(("ORCHARD_", "MLFLOW_", "OTEL_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        match = re.match(r"ORCHARD_([A-Z]+)_(\w+)$", key)
        if match:
            service, field = match.groups()
            assert service == name.upper(), f"{key} in {name}"
            settings = SETTINGS[service]
            assert field.lower() in settings.model_fields, f"{key} is no setting of {name}"
        monkeypatch.setenv(key, value)
    # The values themselves pass the service's start-up validation.
    load_settings(SETTINGS[name.upper()])


def _urls(service: str) -> set[str]:
    return set(
        re.findall(r"https?://([a-z-]+):\d+", " ".join(_environment(_services()[service]).values()))
    )


def test_images_carry_the_names_the_chart_and_cd_publish() -> None:
    # One name per image everywhere: what compose builds locally is what CD pushes and the
    # Helm chart pulls (ghcr.io/orchard-ml/<component>), so a local build can stand in for it.
    cd = yaml.safe_load((ROOT / ".github" / "workflows" / "cd.yml").read_text())
    published = {
        e["dockerfile"]: e["image"] for e in cd["jobs"]["images"]["strategy"]["matrix"]["include"]
    }
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        dockerfile = str((Path(build["context"]) / build["dockerfile"]).as_posix())
        repository, _, tag = service["image"].rpartition(":")
        assert repository == f"ghcr.io/orchard-ml/{published[dockerfile]}", name
        assert tag, name


def test_mlflow_runs_the_charts_image_hardened_on_postgresql() -> None:
    mlflow = _services()["mlflow"]
    assert mlflow["build"]["dockerfile"] == "images/mlflow/Dockerfile"
    # The driver is in the image: nothing is installed when the container starts (offline
    # starts work, and a read-only root would refuse it anyway).
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert "pip" not in " ".join(command)
    assert mlflow["read_only"] is True
    assert "/tmp" in mlflow["tmpfs"]
    assert mlflow["cap_drop"] == ["ALL"]
    assert str(mlflow["user"]).split(":")[0] == "10001"
    env = _environment(mlflow)
    # psycopg 3, the driver the image installs and the chart's URLs name.
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    (destination,) = [a.split("=", 1)[1] for a in command if a.startswith("--artifacts-dest")]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in mlflow["volumes"]}
    # Mounted at the image's own /var/lib/orchard, so a new volume is owned by its user.
    assert "/var/lib/orchard" in mounts
    assert destination.startswith("/var/lib/orchard/")
    assert "127.0.0.1:5000/health" in " ".join(mlflow["healthcheck"]["test"])


def test_services_reach_each_other_by_compose_names() -> None:
    services = set(_services())
    for name in ORCHARD_SERVICES:
        assert _urls(name) <= services, name
    retraining = _environment(_services()["retraining"])
    assert retraining["ORCHARD_RETRAINING_TRAFFIC_BACKEND"] == "local"
    assert retraining["ORCHARD_RETRAINING_PIPELINE_BACKEND"] == "local"
    # Trains in its own container: the local-training target carries orchard-pipelines.
    assert _services()["retraining"]["build"]["target"] == "local-training"
    assert retraining["ORCHARD_RETRAINING_PIPELINE_COMMAND"] == (
        '["python", "-m", "orchard_pipelines.retrain"]'
    )
    gateway = _environment(_services()["gateway"])
    assert gateway["ORCHARD_GATEWAY_ROUTES_URL"] == "http://retraining:8003/v1/routes"


def _without_targets(config: Any) -> Any:
    if isinstance(config, dict):
        return {
            key: _without_targets(value)
            for key, value in config.items()
            if key not in {"targets", "external_labels"}
        }
    if isinstance(config, list):
        return [_without_targets(item) for item in config]
    return config


def test_the_compose_scrape_config_differs_only_in_targets() -> None:
    original = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((MONITORING / "compose" / "prometheus.yml").read_text())
    assert _without_targets(compose) == _without_targets(original)
    jobs = {job["job_name"]: job for job in compose["scrape_configs"]}
    assert set(jobs) == {job["job_name"] for job in original["scrape_configs"]}
    for job, config in jobs.items():
        ((target,),) = (static["targets"] for static in config["static_configs"])
        host, port = target.split(":")
        assert host == job, "each job scrapes the compose service of its name"
        assert f"ORCHARD_{job.upper()}_PORT" in _environment(_services()[job])
        assert _environment(_services()[job])[f"ORCHARD_{job.upper()}_PORT"] == port
    (alerting,) = compose["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_the_compose_alertmanager_config_sends_triggers_to_retraining() -> None:
    original = (MONITORING / "alertmanager" / "alertmanager.yml").read_text()
    compose = (MONITORING / "compose" / "alertmanager.yml").read_text()
    expected = original.replace("http://127.0.0.1:8003/", "http://retraining:8003/")
    assert yaml.safe_load(compose) == yaml.safe_load(expected)
    assert "retraining:8003/v1/alerts/alertmanager" in compose


def test_grafana_gets_the_compose_datasource_and_the_dashboards() -> None:
    original = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    compose = (MONITORING / "compose" / "grafana-datasources.yml").read_text()
    expected = original.read_text().replace("http://127.0.0.1:9090", "http://prometheus:9090")
    assert yaml.safe_load(compose) == yaml.safe_load(expected)
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "orchard.yml").read_text()
    )["providers"][0]
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in _services()["grafana"]["volumes"]
        if volume.startswith(".")
    }
    assert mounts[provider["options"]["path"]] == "./monitoring/grafana/dashboards"


def test_the_collector_takes_otlp_http_and_exports_to_jaeger() -> None:
    config = yaml.safe_load((MONITORING / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    traces = config["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    exporter = next(e for e in traces["exporters"] if e.startswith("otlp/"))
    assert config["exporters"][exporter]["endpoint"].split(":")[0] == "jaeger"
    assert "jaeger" in _services()


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        # Docker is not something CI installs; the checks above stand in for it.
        pytest.skip("docker is not installed: `docker compose config` not run")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed: `docker compose config` not run")
    result = subprocess.run(
        [
            docker,
            "compose",
            "--env-file",
            str(ENV_EXAMPLE),
            "-f",
            str(COMPOSE_FILE),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
