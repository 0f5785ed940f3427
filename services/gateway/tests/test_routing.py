"""Traffic management through the gateway: weights, stickiness, mirrors, fallback, headers."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import Gateway, MakeBackend, MakeGateway
from .factories import eventually, infer_body, write_routes
from .fake_backend import Canned, FakeBackend

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def canary(make_backend: MakeBackend) -> FakeBackend:
    return await make_backend()


@pytest.fixture
async def shadow(make_backend: MakeBackend) -> FakeBackend:
    return await make_backend()


def _table(
    champion: str,
    canary: str,
    *,
    canary_weight: float = 10,
    mirrors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "versions": [
            {"version": "1", "target_url": champion, "weight": 100 - canary_weight},
            {"version": "2", "target_url": canary, "weight": canary_weight, "role": "canary"},
        ],
        **extra,
    }
    if mirrors:
        entry["mirrors"] = mirrors
    return {"credit-risk": entry}


def _routes(tmp_path: Path, models: dict[str, Any]) -> Path:
    path: Path = write_routes(tmp_path / "canary.yaml", models)
    return path


def _infers(backend: FakeBackend) -> int:
    return sum(seen.path.endswith("/infer") for seen in backend.seen)


async def _infer(gateway: Gateway, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return await gateway.client.post(
        "/v2/models/credit-risk/infer",
        content=infer_body(**kw),
        headers={**JSON, **(headers or {})},
    )


async def test_weights_split_traffic_within_statistical_tolerance_and_headers_say_who_served(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, canary: FakeBackend
) -> None:
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=20))
    n = 600
    arms: Counter[tuple[str, str]] = Counter()
    async with make_gateway(routes_file=path) as gateway:
        for _ in range(n):
            reply = await _infer(gateway)
            assert reply.status_code == 200
            arms[
                (reply.headers["x-orchard-model-version"], reply.headers["x-orchard-route-arm"])
            ] += 1
        assert set(arms) == {("1", "champion"), ("2", "canary")}
        # Binomial(n, 0.2), within 4 standard deviations.
        assert abs(arms[("2", "canary")] - n * 0.2) < 4 * math.sqrt(n * 0.2 * 0.8)
        # The header tells the truth: each backend saw exactly the requests said to be its.
        assert _infers(canary) == arms[("2", "canary")]
        assert _infers(backend) == arms[("1", "champion")]
        assert all("/versions/2/" in s.path for s in canary.seen)
        served = gateway.metric(
            "orchard_gateway_predictions_total",
            model="credit-risk",
            version="2",
            arm="canary",
            code="200",
        )
        assert served == arms[("2", "canary")]


async def test_a_unit_keeps_its_version_across_calls_by_header_or_parameter(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, canary: FakeBackend
) -> None:
    path = _routes(
        tmp_path, _table(backend.url, canary.url, canary_weight=50, sticky_key="user_id")
    )
    async with make_gateway(routes_file=path) as gateway:
        for unit in ("alice", "bob", "carol", "dave"):
            by_header = {
                (await _infer(gateway, {"X-Orchard-Unit": unit})).headers["x-orchard-model-version"]
                for _ in range(10)
            }
            assert len(by_header) == 1, unit
            # The model's sticky_key, as a header or as the OIP request parameter, is the
            # same unit and so lands on the same version.
            named = await _infer(gateway, {"user_id": unit})
            body = orjson.loads(infer_body())
            body["parameters"] = {"user_id": unit}
            as_parameter = await gateway.client.post(
                "/v2/models/credit-risk/infer", content=orjson.dumps(body), headers=JSON
            )
            assert named.headers["x-orchard-model-version"] in by_header
            assert as_parameter.headers["x-orchard-model-version"] in by_header
        # Without a unit, requests go either way.
        versions = {(await _infer(gateway)).headers["x-orchard-model-version"] for _ in range(40)}
        assert versions == {"1", "2"}


async def test_an_explicit_version_is_served_by_that_version_only(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, canary: FakeBackend
) -> None:
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=0.001))
    async with make_gateway(routes_file=path) as gateway:
        reply = await gateway.client.post(
            "/v2/models/credit-risk/versions/2/infer", content=infer_body(), headers=JSON
        )
        assert reply.status_code == 200
        assert reply.headers["x-orchard-route-arm"] == "canary"
        assert _infers(canary) == 1
        missing = await gateway.client.post(
            "/v2/models/credit-risk/versions/9/infer", content=infer_body(), headers=JSON
        )
        assert missing.status_code == 404
        assert "routes versions '1', '2'" in missing.json()["error"]


async def test_mirrors_get_a_copy_their_answers_are_discarded_and_outcomes_counted(
    tmp_path: Path,
    make_gateway: MakeGateway,
    backend: FakeBackend,
    canary: FakeBackend,
    shadow: FakeBackend,
) -> None:
    shadow.canned["/v2/models/credit-risk/versions/3/infer"] = _canned_500()
    mirrors = [{"version": "3", "target_url": shadow.url, "percent": 100}]
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=0, mirrors=mirrors))
    async with make_gateway(routes_file=path) as gateway:
        for _ in range(5):
            reply = await _infer(gateway)
            assert reply.status_code == 200  # the mirror's 500 never reaches the caller
            assert reply.headers["x-orchard-route-arm"] == "champion"

        def mirrored() -> bool:
            return (
                gateway.metric(
                    "orchard_gateway_mirror_requests_total",
                    model="credit-risk",
                    version="3",
                    code="500",
                )
                == 5
            )

        await eventually(mirrored, "5 mirrored requests counted")
        assert _infers(shadow) == 5
        # The copy is the caller's request, byte for byte.
        assert all(s.body == infer_body() for s in shadow.seen)
        assert (
            gateway.metric(
                "orchard_gateway_mirror_duration_seconds_count", model="credit-risk", version="3"
            )
            == 5
        )


async def test_a_mirror_percentage_samples_requests_and_a_dead_mirror_harms_nothing(
    tmp_path: Path,
    make_gateway: MakeGateway,
    backend: FakeBackend,
    canary: FakeBackend,
    refused_url: str,
) -> None:
    mirrors = [{"version": "3", "target_url": refused_url, "percent": 30}]
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=0, mirrors=mirrors))
    n = 200
    async with make_gateway(routes_file=path, retry_max_attempts=1) as gateway:
        for _ in range(n):
            assert (await _infer(gateway)).status_code == 200

        def counted() -> float:
            return sum(
                gateway.metric(
                    "orchard_gateway_mirror_requests_total",
                    model="credit-risk",
                    version="3",
                    code=code,
                )
                for code in ("unreachable", "circuit_open")
            )

        await eventually(lambda: gateway.app.state.predictor.mirrors_in_flight == 0, "mirrors done")
        assert abs(counted() - n * 0.3) < 4 * math.sqrt(n * 0.3 * 0.7)


async def test_a_down_canary_falls_back_to_the_champion_and_that_is_counted(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, refused_url: str
) -> None:
    path = _routes(tmp_path, _table(backend.url, refused_url, canary_weight=100))
    async with make_gateway(
        routes_file=path, retry_max_attempts=1, breaker_failure_threshold=3
    ) as gateway:
        for _ in range(6):
            reply = await _infer(gateway)
            assert reply.status_code == 200
            assert reply.headers["x-orchard-model-version"] == "1"
            assert reply.headers["x-orchard-route-arm"] == "champion"
            assert reply.headers["x-orchard-fallback-from"] == "2"
        unreachable = gateway.metric(
            "orchard_gateway_fallbacks_total",
            model="credit-risk",
            version="2",
            reason="unreachable",
        )
        circuit_open = gateway.metric(
            "orchard_gateway_fallbacks_total",
            model="credit-risk",
            version="2",
            reason="circuit_open",
        )
        # The first failures open the canary's circuit; after that it is not even tried.
        assert (unreachable, circuit_open) == (3, 3)
        # Asked for by name, the canary is not swapped for another version.
        pinned = await gateway.client.post(
            "/v2/models/credit-risk/versions/2/infer", content=infer_body(), headers=JSON
        )
        assert pinned.status_code == 503
        assert "retry-after" in pinned.headers


async def test_a_canary_answering_503_falls_back(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, canary: FakeBackend
) -> None:
    canary.canned["/v2/models/credit-risk/versions/2/infer"] = _canned(503, {"error": "loading"})
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=100))
    async with make_gateway(routes_file=path, retry_max_attempts=1) as gateway:
        reply = await _infer(gateway)
        assert reply.status_code == 200
        assert reply.headers["x-orchard-fallback-from"] == "2"
        assert (
            gateway.metric(
                "orchard_gateway_fallbacks_total",
                model="credit-risk",
                version="2",
                reason="unavailable",
            )
            == 1
        )


async def test_kserve_v1_goes_through_the_router_too(
    tmp_path: Path, make_gateway: MakeGateway, backend: FakeBackend, canary: FakeBackend
) -> None:
    path = _routes(tmp_path, _table(backend.url, canary.url, canary_weight=100))
    async with make_gateway(routes_file=path) as gateway:
        reply = await gateway.client.post(
            "/v1/models/credit-risk:predict", content=b'{"instances": [[1, 2]]}', headers=JSON
        )
        assert reply.status_code == 200
        assert reply.json() == {"predictions": [0]}
        assert reply.headers["x-orchard-route-arm"] == "canary"
        assert [s.path for s in canary.seen] == ["/v1/models/credit-risk:predict"]


def _canned(status: int, payload: Any) -> Canned:
    return Canned(status, orjson.dumps(payload))


def _canned_500() -> Canned:
    return _canned(500, {"error": "shadow model broke"})
