"""The GitHub Actions workflows (.github/workflows): actionlint finds nothing in them (and does
fail a broken one), every job has a timeout and least-privilege permissions, CI and CD build
every image the repository has a Dockerfile for, CI installs what .ci/run installs, and CD's
deploys are atomic and its canary rollout is `orchard rollout start --wait`, with flags the
CLI really has.

actionlint comes from ``scripts/install-actionlint`` (a WebAssembly build run by Node): the
lint tests are skipped without node or it, and fail under CI=true.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from orchard_cli import rollout

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
CI = WORKFLOWS_DIR / "ci.yml"
CD = WORKFLOWS_DIR / "cd.yml"
RUNNER = ROOT / "scripts" / "actionlint.cjs"
LINTER = ROOT / ".tools" / "actionlint" / "node_modules" / "@tktco" / "node-actionlint"
#: Folders that hold no Dockerfile of ours: tool installs, environments, dependencies.
NOT_SOURCE = {"node_modules", ".venv", ".venvs", ".tools", ".git"}
#: Permissions that let a job change something outside its own run.
WRITE_SCOPES = {"packages", "id-token", "attestations", "contents", "deployments"}

workflow = pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def _jobs(path: Path) -> dict[str, dict[str, Any]]:
    return dict(_load(path)["jobs"])


def _steps(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in _jobs(path).items():
        for step in job.get("steps", []):
            yield name, step


def _runs(path: Path) -> str:
    return "\n".join(str(step.get("run", "")) for _, step in _steps(path))


def _lint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node not found: actionlint runs under Node (apt-get install npm)"
    elif not (LINTER / "package.json").is_file():
        reason = "actionlint not installed: run scripts/install-actionlint"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must lint the workflows")
        pytest.skip(reason)
    assert node is not None
    return subprocess.run(
        [node, str(RUNNER), *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _dockerfiles() -> set[str]:
    found = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in NOT_SOURCE and not d.startswith(".")]
        for name in files:
            if (
                name == "Dockerfile"
                or name.startswith("Dockerfile.")
                or name.endswith(".Dockerfile")
            ):
                found.add(str((Path(folder) / name).relative_to(ROOT)))
    return found


def _matrix_dockerfiles(path: Path) -> set[str]:
    found = set()
    for job in _jobs(path).values():
        for entry in job.get("strategy", {}).get("matrix", {}).get("include", []):
            if "dockerfile" in entry:
                found.add(entry["dockerfile"])
    return found


def test_there_are_workflows() -> None:
    assert CI in WORKFLOWS
    assert CD in WORKFLOWS


def test_actionlint_finds_nothing() -> None:
    result = _lint()
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_actionlint_fails_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-lastest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.number ) }}\n"
    )
    result = _lint(broken)
    assert result.returncode == 1, f"{result.stdout}{result.stderr}"
    findings = result.stdout.splitlines()
    assert any(
        line.startswith(f"{broken}:4:") and "ubuntu-lastest" in line and "[runner-label]" in line
        for line in findings
    ), result.stdout
    assert any(line.startswith(f"{broken}:6:") and "[expression]" in line for line in findings), (
        result.stdout
    )


@workflow
def test_every_job_has_a_timeout(path: Path) -> None:
    # Without one a hung job holds a runner for GitHub's default of six hours.
    missing = [name for name, job in _jobs(path).items() if "timeout-minutes" not in job]
    assert not missing, f"{path.name}: jobs without timeout-minutes: {missing}"


@workflow
def test_the_token_is_read_only_unless_a_job_asks(path: Path) -> None:
    document = _load(path)
    assert "permissions" in document, f"{path.name} leaves the token's default permissions"
    top = document["permissions"] or {}
    assert isinstance(top, dict), f"{path.name}: permissions: {top!r} (name scopes instead)"
    writes = {scope for scope, level in top.items() if level == "write"}
    assert not writes, f"{path.name} gives every job write access to {writes}"


def test_only_publishing_jobs_may_write() -> None:
    writers = {
        name: {s for s, level in (job.get("permissions") or {}).items() if level == "write"}
        for name, job in _jobs(CD).items()
    }
    writers = {name: scopes for name, scopes in writers.items() if scopes}
    assert set(writers) == {"images", "chart"}, writers
    assert all(scopes <= WRITE_SCOPES for scopes in writers.values()), writers
    for name, job in _jobs(CD).items():
        signs = any("attest" in str(step.get("uses", "")) for step in job.get("steps", []))
        wants_id_token = (job.get("permissions") or {}).get("id-token") == "write"
        assert wants_id_token == signs, f"{name}: id-token: write only to sign attestations"


@pytest.mark.parametrize("path", [CI, CD], ids=lambda p: p.name)
def test_every_dockerfile_is_built(path: Path) -> None:
    assert _matrix_dockerfiles(path) == _dockerfiles()


def test_cd_publishes_images_under_the_names_the_chart_pulls() -> None:
    values = yaml.safe_load((ROOT / "charts" / "orchard" / "values.yaml").read_text())
    entries = _jobs(CD)["images"]["strategy"]["matrix"]["include"]
    names = {entry["image"] for entry in entries}
    pulled = {
        values[component]["image"]["repository"]
        for component in ("gateway", "evaluation", "retraining", "mlflow")
    }
    pulled |= {
        values["retraining"]["trainingImage"]["repository"],
        values["kserve"]["servingRuntime"]["image"]["repository"],
    }
    assert pulled <= names


def test_ci_installs_the_tools_ci_run_installs() -> None:
    installers = set(re.findall(r"scripts/install-[\w-]+", (ROOT / ".ci" / "run").read_text()))
    assert installers, ".ci/run calls no scripts/install-*"
    missing = sorted(i for i in installers if i not in _runs(CI))
    assert not missing, f"ci.yml does not run {missing}, which .ci/run does"


@workflow
def test_the_scripts_a_workflow_runs_exist(path: Path) -> None:
    for script in set(re.findall(r"(?<![\w/])scripts/[\w.-]+", _runs(path))):
        assert (ROOT / script).is_file(), f"{path.name} runs {script}, which does not exist"


def test_deploys_roll_back_on_failure() -> None:
    upgrades = [
        (job, step["run"]) for job, step in _steps(CD) if "helm upgrade" in str(step.get("run", ""))
    ]
    assert {job for job, _ in upgrades} == {"staging", "production"}
    for job, command in upgrades:
        for flag in ("--install", "--atomic", "--wait"):
            assert flag in command, f"{job}: helm upgrade without {flag}"
    assert _jobs(CD)["staging"]["environment"] == "staging"
    production = _jobs(CD)["production"]
    assert production["environment"] == "production"
    assert "staging" in production["needs"]


def test_the_canary_rollout_waits_and_uses_real_flags() -> None:
    commands = [
        (job, step["run"])
        for job, step in _steps(CD)
        if "orchard rollout start" in str(step.get("run", ""))
    ]
    assert [job for job, _ in commands] == ["production"], commands
    command = commands[0][1].replace("\\\n", " ")
    line = next(part for part in command.splitlines() if "orchard rollout start" in part)
    arguments = shlex.split(line.split("orchard rollout start", 1)[1])
    flags = {word.split("=")[0] for word in arguments if word.startswith("-")}
    # --wait makes the exit status the verdict: non-zero (rolled back) fails the job.
    assert "--wait" in flags
    assert {"--model", "--candidate"} <= flags
    start = typer.main.get_group(rollout.app).commands["start"]
    known = {option for param in start.params for option in param.opts}
    assert flags <= known, f"not options of `orchard rollout start`: {sorted(flags - known)}"


@workflow
def test_credentials_come_only_from_secrets(path: Path) -> None:
    credential = re.compile(r"(password|token|kubeconfig_data|secret)", re.IGNORECASE)
    for job, step in _steps(path):
        settings = {**step.get("with", {}), **step.get("env", {})}
        for key, value in settings.items():
            if credential.search(key):
                assert re.fullmatch(r"\$\{\{\s*secrets\.\w+\s*\}\}", str(value)), (
                    f"{path.name} {job}: {key} is not a ${{{{ secrets.X }}}} reference"
                )
