"""The route table: the gateway's full form, canonical bytes, a strong ETag."""

from __future__ import annotations

from dataclasses import replace

import orjson

from orchard_retraining.rollouts import RolloutSpec, RolloutState, RolloutStatus, Start, advance
from orchard_retraining.route_table import build_route_table, etag_matches, render

URL = "http://127.0.0.1:8080"


def spec(**settings: object) -> RolloutSpec:
    return RolloutSpec.from_dict(
        {"model": "credit-risk", "champion_version": "3", "candidate_version": "4", **settings}
    )


def started(rollout: RolloutSpec) -> RolloutState:
    return advance(rollout, RolloutState(), Start(), 0.0).state


def everywhere(model: str, version: str) -> str | None:
    return URL


def test_champions_alone_take_all_traffic() -> None:
    table = build_route_table({"digits": "7"}, [], everywhere)
    assert table == {
        "models": {
            "digits": {
                "versions": [
                    {"version": "7", "target_url": URL, "weight": 100.0, "role": "champion"}
                ],
                "mirrors": [],
                "sticky_key": "X-Orchard-Unit",
                "experiment": None,
            }
        }
    }


def test_a_canary_splits_and_a_shadow_mirrors() -> None:
    canary = spec(steps=[10, 100])
    entry = build_route_table({"credit-risk": "3"}, [(canary, started(canary))], everywhere)
    assert entry["models"]["credit-risk"]["versions"] == [
        {"version": "3", "target_url": URL, "weight": 90.0, "role": "champion"},
        {"version": "4", "target_url": URL, "weight": 10.0, "role": "canary"},
    ]
    shadow = spec(strategy="shadow_first", shadow_percent=20, shadow_duration_s=60)
    entry = build_route_table({}, [(shadow, started(shadow))], everywhere)["models"]["credit-risk"]
    assert entry["versions"] == [
        {"version": "3", "target_url": URL, "weight": 100.0, "role": "champion"}
    ]  # the candidate at 0 % is left out
    assert entry["mirrors"] == [{"version": "4", "target_url": URL, "percent": 20.0}]


def test_an_ab_rollout_names_its_experiment_and_unit() -> None:
    ab = spec(strategy="ab", experiment_id="exp-7", sticky_key="X-User", experiment_percent=30)
    entry = build_route_table({}, [(ab, started(ab))], everywhere)["models"]["credit-risk"]
    assert entry == {
        "versions": [
            {"version": "3", "target_url": URL, "weight": 70.0, "role": "arm"},
            {"version": "4", "target_url": URL, "weight": 30.0, "role": "arm"},
        ],
        "mirrors": [],
        "sticky_key": "X-User",
        "experiment": "exp-7",
    }


def test_versions_without_a_target_are_left_out() -> None:
    canary = spec()
    state = started(canary)

    def only_champion(model: str, version: str) -> str | None:
        return URL if version == "3" else None

    entry = build_route_table({}, [(canary, state)], only_champion)["models"]["credit-risk"]
    assert [v["version"] for v in entry["versions"]] == ["3"]
    assert build_route_table({"credit-risk": "3"}, [(canary, state)], lambda m, v: None) == {
        "models": {}
    }
    finished = replace(state, status=RolloutStatus.PROMOTED)
    assert (
        build_route_table({"credit-risk": "4"}, [(canary, finished)], everywhere)["models"][
            "credit-risk"
        ]["versions"][0]["version"]
        == "4"
    )


def test_the_etag_follows_the_content_and_only_it() -> None:
    canary = spec(steps=[10, 50, 100])
    state = started(canary)
    first = render(build_route_table({"credit-risk": "3"}, [(canary, state)], everywhere))
    again = render(build_route_table({"credit-risk": "3"}, [(canary, state)], everywhere))
    assert first == again
    assert first.etag.startswith('"')
    assert first.etag.endswith('"')
    assert orjson.loads(first.body)["models"]["credit-risk"]["versions"][1]["weight"] == 10.0
    moved = replace(state, candidate_weight=50.0)
    changed = render(build_route_table({"credit-risk": "3"}, [(canary, moved)], everywhere))
    assert changed.etag != first.etag
    assert etag_matches(first.etag, first.etag)
    assert etag_matches(f'"x", W/{first.etag}', first.etag)
    assert etag_matches("*", first.etag)
    assert not etag_matches(changed.etag, first.etag)
    assert not etag_matches(None, first.etag)
