"""Route table parsing, validation, lookups and reloading."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest

from orchard_core import ModelNotFound
from orchard_gateway.route_sources import load_route_table
from orchard_gateway.routes_table import (
    ModelRoutes,
    Route,
    RouteTable,
    RouteTableError,
    parse_route_table,
    unit_position,
)

from .factories import routes_to, write_routes

BACKEND = "http://127.0.0.1:8080"


def test_a_table_as_orchard_up_writes_it() -> None:
    table = parse_route_table(
        """
models:
  credit-risk: {backend: "http://127.0.0.1:8080", version: "1"}
  digits: {backend: "https://runtime.ml.svc:8443/", version: 12}
"""
    )
    assert table.models == ["credit-risk", "digits"]
    assert table["credit-risk"].versions == (Route("credit-risk", BACKEND, "1"),)
    # Numbers become strings; a trailing slash is dropped so paths join cleanly.
    assert table.resolve("digits") == Route("digits", "https://runtime.ml.svc:8443", "12")


def test_json_is_accepted(tmp_path: Path) -> None:
    path = write_routes(tmp_path / "routes.json", routes_to(BACKEND, "digits"))
    assert load_route_table(path).resolve("digits").backend == BACKEND


def test_a_backend_may_have_a_path_prefix() -> None:
    table = parse_route_table('models: {m: {backend: "http://gw.local/runtime", version: "a1"}}')
    assert table["m"].backend == "http://gw.local/runtime"


def test_unknown_keys_are_refused_so_a_typo_is_not_silently_ignored() -> None:
    with pytest.raises(RouteTableError, match=r"model 'm': unknown keys \['weigth'\]"):
        parse_route_table('models: {m: {backend: "http://b", version: "1", weigth: 5}}')


def test_an_empty_models_section_routes_nothing() -> None:
    assert len(parse_route_table("models:\n")) == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'models' key"),
        ("routes: {}\n", "expected a mapping with a 'models' key"),
        ("models: [a, b]\n", "'models' must map each model name"),
        ("models: {m: http://x}\n", "model 'm': expected a mapping"),
        ("models: {m: {version: '1'}}\n", "model 'm': 'backend' is required"),
        ("models: {m: {backend: 'http://x'}}\n", "model 'm': 'version' is required"),
        ("models: {m: {backend: 'ftp://x', version: '1'}}\n", "is not an http(s) URL"),
        ("models: {m: {backend: 'localhost:8080', version: '1'}}\n", "is not an http(s) URL"),
        ("models: {m: {backend: 'http://x:port', version: '1'}}\n", "invalid port"),
        ("models: {m: {backend: 'http://x?a=1', version: '1'}}\n", "must not have a query"),
        ("models: {m: {backend: 7, version: '1'}}\n", "'backend' must be an http(s) URL"),
        ("models: {m: {backend: 'http://x', version: ''}}\n", "'version' must be a non-empty"),
        ("models: {m: {backend: 'http://x', version: true}}\n", "'version' must be a non-empty"),
        ("models: {m: {backend: 'http://x', version: 'a/b'}}\n", "version 'a/b' may only use"),
        ("models: {'a/b': {backend: 'http://x', version: '1'}}\n", "model name 'a/b' is invalid"),
        ("models: {'my model': {backend: 'http://x', version: '1'}}\n", "is invalid"),
        ("models: {1: {backend: 'http://x', version: '1'}}\n", "model name 1 is invalid"),
    ],
)
def test_invalid_tables_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text)
    assert problem in str(caught.value)


def test_invalid_json_is_refused() -> None:
    with pytest.raises(RouteTableError, match="not valid JSON"):
        parse_route_table(b'{"models": ', json=True)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RouteTableError, match=f"route table {missing}: file not found"):
        load_route_table(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: {m: {backend: 'http://x'}}\n")
    with pytest.raises(RouteTableError, match=f"route table {broken}: model 'm'"):
        load_route_table(broken)


def _single(model: str, version: str) -> ModelRoutes:
    return ModelRoutes(model, (Route(model, BACKEND, version),))


def test_resolve_explains_what_is_routed() -> None:
    table = RouteTable({"a": _single("a", "1"), "b": _single("b", "2")})
    assert table.resolve("b", "2").version == "2"
    with pytest.raises(
        ModelNotFound,
        match=r"^model 'x' is not routed by this gateway"
        r" \(routed models: a, b\)$",
    ):
        table.resolve("x")
    with pytest.raises(ModelNotFound, match="model 'a' has no version '2' here"):
        table.resolve("a", "2")
    with pytest.raises(ModelNotFound, match=r"\(no models are routed\)"):
        RouteTable().resolve("x")
    many = RouteTable({f"m{i}": _single(f"m{i}", "1") for i in range(30)})
    with pytest.raises(ModelNotFound, match=r"\(30 models are routed; GET /v2/models"):
        many.resolve("x")


def test_a_table_cannot_be_changed_once_made() -> None:
    source = {"a": _single("a", "1")}
    table = RouteTable(source)
    source["b"] = _single("b", "1")
    assert list(table) == ["a"]
    with pytest.raises(TypeError):
        table["b"] = _single("b", "1")  # type: ignore[index]


CANARY_TABLE = """
models:
  credit-risk:
    sticky_key: X-User
    experiment: exp-7
    versions:
      - {version: "3", target_url: "http://champion:8080", weight: 90, role: champion}
      - {version: "4", target_url: "http://canary:8080/", weight: 10, role: canary}
    mirrors:
      - {version: "5", target_url: "http://shadow:8080", percent: 20}
"""


def test_the_full_form_with_weights_mirrors_stickiness_and_an_experiment() -> None:
    routes = parse_route_table(CANARY_TABLE)["credit-risk"]
    champion, canary = routes.versions
    assert (champion.version, champion.role, champion.arm, champion.weight) == (
        "3",
        "champion",
        "champion",
        90.0,
    )
    assert (canary.backend, canary.arm, canary.weight) == ("http://canary:8080", "canary", 10.0)
    assert routes.champion is champion
    assert routes.backend == "http://champion:8080"
    (mirror,) = routes.mirrors
    assert (mirror.route.version, mirror.route.arm, mirror.percent) == ("5", "shadow", 20.0)
    assert (routes.sticky_key, routes.experiment) == ("X-User", "exp-7")
    # Any routed version can be asked for by name, a mirror's included.
    assert routes.pinned("4") is canary
    assert routes.pinned("5") is mirror.route
    with pytest.raises(ModelNotFound, match="routes versions '3', '4'"):
        routes.pinned("6")


def test_ab_arms_are_named_and_without_a_champion_the_heaviest_takes_fallbacks() -> None:
    routes = parse_route_table(
        """
models:
  m:
    versions:
      - {version: "1", target_url: "http://a", weight: 40, role: arm}
      - {version: "2", target_url: "http://b", weight: 60, role: arm, arm: treatment}
"""
    )["m"]
    assert [r.arm for r in routes.versions] == ["arm-1", "treatment"]
    assert routes.champion.version == "2"


@pytest.mark.parametrize(
    ("versions", "problem"),
    [
        ("[]", "'versions' must list at least one version"),
        ("{}", "versions must be a list"),
        ("[{version: '1'}]", "versions[0]: 'target_url' is required"),
        ("[{version: '1', target_url: 'http://a', weight: -1}]", "'weight' must be 0..1e+06"),
        ("[{version: '1', target_url: 'http://a', weight: 'x'}]", "'weight' must be a number"),
        ("[{version: '1', target_url: 'http://a', weight: .nan}]", "'weight' must be a number"),
        ("[{version: '1', target_url: 'http://a', weight: 0}]", "no version has a positive"),
        ("[{version: '1', target_url: 'http://a', role: boss}]", "'role' must be one of"),
        (
            "[{version: '1', target_url: 'http://a'}, {version: '1', target_url: 'http://b'}]",
            "a version is listed twice",
        ),
        (
            "[{version: '1', target_url: 'http://a'}, {version: '2', target_url: 'http://b'}]",
            "more than one version has the role 'champion'",
        ),
        ("[{version: '1', target_url: 'http://a', arm: 'a b'}]", "'arm' must be a short name"),
    ],
)
def test_invalid_full_forms_are_refused_with_the_reason(versions: str, problem: str) -> None:
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(f"models: {{m: {{versions: {versions}}}}}\n")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("mirrors: [{version: '2', target_url: 'http://s'}]", "'percent' is required"),
        (
            "mirrors: [{version: '2', target_url: 'http://s', percent: 101}]",
            "'percent' must be 0..100",
        ),
        ("sticky_key: 'a b'", "'sticky_key' must be a header or parameter name"),
        ("experiment: 'a/b'", "'experiment' must be a short id"),
    ],
)
def test_invalid_mirrors_keys_and_experiments_are_refused(extra: str, problem: str) -> None:
    text = f"models: {{m: {{versions: [{{version: '1', target_url: 'http://a'}}], {extra}}}}}\n"
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text)
    assert problem in str(caught.value)


def _two_arms(canary_weight: float) -> ModelRoutes:
    return ModelRoutes(
        "m",
        (
            Route("m", "http://a", "1", "champion", "champion", 100 - canary_weight),
            Route("m", "http://b", "2", "canary", "canary", canary_weight),
        ),
    )


def test_without_a_unit_traffic_splits_by_weight_within_statistical_tolerance() -> None:
    routes = _two_arms(10)
    rng = random.Random(7)
    n = 20_000
    counts = Counter(routes.assign(None, rng.random).version for _ in range(n))
    # Binomial(n, 0.1): the count is within 4 standard deviations of n * 0.1.
    assert abs(counts["2"] - n * 0.1) < 4 * math.sqrt(n * 0.1 * 0.9)
    assert counts["1"] + counts["2"] == n


def test_units_split_by_weight_and_keep_their_version_while_weights_stay() -> None:
    routes = _two_arms(25)
    units = [f"user-{i}" for i in range(8_000)]
    first = {unit: routes.assign(unit).version for unit in units}
    canary_share = sum(v == "2" for v in first.values()) / len(units)
    assert abs(canary_share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(units))
    # Same weights (even a freshly parsed table): every unit lands where it did.
    again = _two_arms(25)
    assert all(again.assign(unit).version == version for unit, version in first.items())


def test_raising_the_canary_weight_only_moves_units_towards_the_canary() -> None:
    units = [f"user-{i}" for i in range(2_000)]
    before = {u: _two_arms(10).assign(u).version for u in units}
    after = {u: _two_arms(50).assign(u).version for u in units}
    assert all(after[u] == "2" for u in units if before[u] == "2")


def test_the_experiment_id_reshuffles_units_and_positions_are_stable() -> None:
    assert unit_position("m", "alice") == unit_position("m", "alice")
    assert 0.0 <= unit_position("m", "alice") < 1.0
    assert unit_position("exp-1", "alice") != unit_position("exp-2", "alice")
