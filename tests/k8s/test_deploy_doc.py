"""docs/deploy.md stays true to the repository it describes.

A reader copies its commands and values blocks as they are, so each is checked against what
it names: YAML blocks parse; values blocks (a first line ``# values...``) render with
``helm template`` against charts/orchard, i.e. pass its schema; the ``--set`` flags of the
doc's ``helm install|upgrade`` commands for this chart name keys of values.yaml and render
too; repository paths, relative links and in-page anchors exist; ``port-forward`` targets are
Services (and ports) the chart renders for the release ``orchard``; ``docker build -f`` names
existing Dockerfiles and tags exactly the images the chart pulls; the prediction requests
carry the inputs the credit-risk model really takes (its dataset module, not a copy).

helm comes from ``scripts/install-helm`` or PATH (see chart_render.py): without it the
rendering tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from orchard_pipelines.datasets.credit_risk import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    FEATURES,
    INTEGER_FEATURES,
)

from .chart_render import CHART, ROOT, _run_helm

DOC: Final = ROOT / "docs" / "deploy.md"
RELEASE: Final = "orchard"  # the release and namespace the doc's commands assume
NAMESPACE: Final = "orchard"
_FENCE: Final = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
# A repository path: a top-level folder of this repository at the start of a token.
_TOP: Final = (
    "charts|k8s|services|pipelines|docs|images|monitoring|cli|libs|tests|scripts|\\.github"
)
_PATH: Final = re.compile(rf"(?<![\w./:$<@-])((?:{_TOP})/[\w./-]*[\w/])")
_LINK: Final = re.compile(r"\]\((?P<target>[^)#\s]*)(?:#(?P<anchor>[^)\s]*))?\)")
_PORT_FORWARD: Final = re.compile(
    rf"kubectl -n {NAMESPACE} port-forward (?:svc|service)/(?P<name>[\w-]+) "
    r"(?P<local>\d+):(?P<remote>\d+)"
)
_SHELL_VARIABLE: Final = re.compile(r"\$\{?\w+\}?")
_BUILD: Final = re.compile(r"docker build\b.*?-f\s+(?P<dockerfile>\S+).*?-t\s+(?P<tag>\S+)")
_BODY: Final = re.compile(r"-d '(?P<body>\{.*?\})'", re.S)


def _doc() -> str:
    text: str = DOC.read_text(encoding="utf-8")
    return text


def _blocks(*languages: str) -> list[str]:
    """The doc's fenced code blocks in these languages, dedented (some sit in list items)."""
    return [textwrap.dedent(m["body"]) for m in _FENCE.finditer(_doc()) if m["lang"] in languages]


def _commands() -> list[str]:
    """Every shell command line of the doc's bash blocks, continuation lines joined."""
    commands: list[str] = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                commands.append(re.sub(r"\s+", " ", stripped))
    return commands


def _values_blocks() -> dict[str, str]:
    """Values blocks by their title (the first line, ``# values: <title>``)."""
    blocks: dict[str, str] = {}
    for block in _blocks("yaml"):
        first = block.splitlines()[0]
        if first.startswith("# values"):
            title = first.removeprefix("# values").strip(" :") or f"block {len(blocks) + 1}"
            assert title not in blocks, f"two values blocks titled {title!r}"
            blocks[title] = block
    return blocks


VALUES_BLOCKS: Final = _values_blocks()
FIRST_INSTALL: Final = "my-values.yaml, the first install"


def _render(tmp_path: Path, values: str | None = None, *extra: str) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(values, encoding="utf-8")
        args += ["-f", str(path)]
    return [d for d in yaml.safe_load_all(_run_helm(*args)) if d]


def _chart_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return loaded


def _names_a_value(values: dict[str, Any], key: str) -> bool:
    """Whether ``--set key=`` addresses values.yaml: an existing key, or an entry of a
    free-form map that is empty by default (``gateway.env``, ``...annotations``)."""
    node: Any = values
    for part in re.sub(r"\[\d+\]", "", key).split("."):
        if not isinstance(node, dict):
            return False
        if part not in node:
            return node == {}
        node = node[part]
    return True


def _pulled_images() -> set[str]:
    """The repositories (inside global.imageRegistry) of every Orchard image the chart pulls."""
    values = _chart_values()
    return {
        values["gateway"]["image"]["repository"],
        values["evaluation"]["image"]["repository"],
        values["retraining"]["image"]["repository"],
        values["mlflow"]["image"]["repository"],
        values["kserve"]["servingRuntime"]["image"]["repository"],
        values["retraining"]["trainingImage"]["repository"],
    }


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_doc_has_the_sections_a_new_user_needs() -> None:
    text = _doc()
    for section in (
        "## 1. Prerequisites",
        "## 2. Images",
        "## 3. From an empty cluster to a first prediction",
        "## 4. Upgrade, roll back, uninstall",
        "## 5. Values for common cases",
        "## 6. Cluster sizing",
        "## 7. Troubleshooting",
    ):
        assert section in text, f"docs/deploy.md lost its section {section!r}"
    assert FIRST_INSTALL in VALUES_BLOCKS


def test_every_yaml_block_parses() -> None:
    blocks = _blocks("yaml")
    assert len(blocks) >= 9
    for block in blocks:
        documents = list(yaml.safe_load_all(block))
        assert documents, block
        assert all(isinstance(d, dict) for d in documents), block


@pytest.mark.parametrize("title", sorted(VALUES_BLOCKS))
def test_values_block_renders_against_the_chart(title: str, tmp_path: Path) -> None:
    # helm validates the values against values.schema.json first (unknown keys, types).
    documents = _render(tmp_path, VALUES_BLOCKS[title])
    assert any(d["kind"] == "Deployment" for d in documents)


def test_the_first_install_routes_credit_risk_with_api_keys(tmp_path: Path) -> None:
    documents = _render(tmp_path, VALUES_BLOCKS[FIRST_INSTALL])
    retraining = next(
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{RELEASE}-retraining"
    )
    env = {e["name"]: e for e in retraining["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["ORCHARD_RETRAINING_MODELS"]["value"]) == ["credit-risk"]
    gateway = next(
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{RELEASE}-gateway"
    )
    gateway_env = {
        e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert gateway_env["ORCHARD_GATEWAY_AUTH_ENABLED"]["value"] == "true"
    keys = gateway_env["ORCHARD_GATEWAY_API_KEYS"]["valueFrom"]["secretKeyRef"]
    pepper = gateway_env["ORCHARD_GATEWAY_API_KEY_PEPPER"]["valueFrom"]["secretKeyRef"]
    # The Secret the doc creates, with the key names it uses.
    created = next(c for c in _commands() if "create secret generic orchard-gateway-keys" in c)
    assert keys["name"] == pepper["name"] == "orchard-gateway-keys"
    assert f"--from-file={keys['key']}=" in created
    assert f"--from-literal={pepper['key']}=" in created


def test_helm_set_flags_name_chart_values_and_render(tmp_path: Path) -> None:
    values = _chart_values()
    commands = [
        c
        for c in _commands()
        if re.match(r"helm (install|upgrade)\b", c) and re.search(r"charts/orchard\b", c)
    ]
    assert commands, "the doc has no helm install/upgrade of charts/orchard"
    checked = 0
    for command in commands:
        flags: list[str] = []
        words = shlex.split(command)
        for flag, pair in itertools.pairwise(words):
            if flag not in ("--set", "--set-string"):
                continue
            key, _, value = pair.partition("=")
            assert _names_a_value(values, key), f"{command}\n{flag} {key}: not in values.yaml"
            # Shell variables ($TAG) stand for some string.
            flags += [flag, f"{key}={_SHELL_VARIABLE.sub('x', value)}"]
            checked += 1
        if flags:
            _render(tmp_path, None, *flags)
    assert checked


def test_repository_paths_in_the_doc_exist() -> None:
    paths = set(_PATH.findall(_doc()))
    assert "k8s/namespace/namespace.yaml" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/deploy.md names paths that do not exist: {missing}"


def test_links_and_anchors_resolve() -> None:
    text = _doc()
    anchors = {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    for match in _LINK.finditer(text):
        target, anchor = match["target"], match["anchor"]
        if target.startswith(("http://", "https://")):
            continue
        if target:
            assert (DOC.parent / target).exists(), f"link to a missing file: {target}"
        elif anchor is not None:
            assert anchor in anchors, f"link to a missing section: #{anchor}"


def test_port_forwards_name_the_rendered_services(tmp_path: Path) -> None:
    documents = _render(tmp_path, VALUES_BLOCKS[FIRST_INSTALL])
    services = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for d in documents
        if d["kind"] == "Service"
    }
    forwards = list(_PORT_FORWARD.finditer(_doc()))
    assert {m["name"] for m in forwards} >= {f"{RELEASE}-retraining", f"{RELEASE}-gateway"}
    for match in forwards:
        assert match["name"] in services, f"no Service {match['name']}: {sorted(services)}"
        assert int(match["remote"]) in services[match["name"]], match[0]


def test_image_builds_use_existing_dockerfiles_and_the_charts_image_names() -> None:
    pulled = _pulled_images()
    built: set[str] = set()
    for command in _commands():
        match = _BUILD.search(command)
        if match is None:
            continue
        dockerfile = match["dockerfile"]
        assert (ROOT / dockerfile).is_file(), f"{command}: no {dockerfile}"
        built.add(match["tag"].rsplit(":", 1)[0].rsplit("/", 1)[-1])
    assert built == pulled, f"built {sorted(built)}, the chart pulls {sorted(pulled)}"


def test_cd_publishes_every_image_the_chart_pulls() -> None:
    # The doc sends readers of a release to the images cd.yml pushed.
    workflow = yaml.safe_load((ROOT / ".github/workflows/cd.yml").read_text(encoding="utf-8"))
    published = {
        entry["image"] for entry in workflow["jobs"]["images"]["strategy"]["matrix"]["include"]
    }
    assert published == _pulled_images(), "cd.yml's image matrix and the chart's images differ"


def _bodies(path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for block in _blocks("bash"):
        if path in block:
            found += [json.loads(m["body"]) for m in _BODY.finditer(block)]
    return found


def _expected_datatype(name: str) -> str:
    if name in CATEGORICAL_FEATURES:
        return "BYTES"
    return "INT64" if name in INTEGER_FEATURES else "FP64"


def test_the_v2_prediction_request_has_the_inputs_credit_risk_takes() -> None:
    bodies = _bodies("/v2/models/credit-risk/infer")
    assert bodies, "no Open Inference Protocol v2 request for credit-risk in the doc"
    for body in bodies:
        inputs = body["inputs"]
        assert [i["name"] for i in inputs] == list(FEATURES)
        for item in inputs:
            name = item["name"]
            assert item["datatype"] == _expected_datatype(name), name
            assert item["shape"] == [len(item["data"])], name
            if name in CATEGORIES:
                assert set(item["data"]) <= set(CATEGORIES[name]), name


def test_the_v1_prediction_request_has_the_inputs_credit_risk_takes() -> None:
    bodies = _bodies("/v1/models/credit-risk:predict")
    assert bodies, "no KServe v1 request for credit-risk in the doc"
    for body in bodies:
        for instance in body["instances"]:
            assert set(instance) == set(FEATURES)
            for name, categories in CATEGORIES.items():
                assert instance[name] in categories, name
