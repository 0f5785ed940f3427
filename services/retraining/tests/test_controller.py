"""The rollout controller: verdicts move rollouts, aliases and traffic follow, restarts resume.

Evaluation is a real aiohttp server on loopback answering what each test sets; the traffic
backend and the registry are in-memory fakes (the protocols let tests pass their own); the
clock is the test's, and ticks are driven by calling ``tick()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web

from orchard_core import new_registry
from orchard_core.errors import NotFound
from orchard_retraining.app import create_app
from orchard_retraining.registry import RegistryUnavailable
from orchard_retraining.settings import RetrainingSettings

from .conftest import Retraining

T0 = 1_700_000_000.0
RUNTIME = "http://runtime.test:8080"
CANARY: dict[str, Any] = {
    "model": "credit-risk",
    "champion_version": "3",
    "candidate_version": "4",
    "steps": [10, 50, 100],
    "step_interval_s": 0.2,
    "max_wait_s": 60,
    "min_samples": 100,
}


@dataclass
class EvaluationStub:
    """A tiny evaluation service: answers ``answer`` (status, JSON) and records the queries."""

    answer: tuple[int, Any] = (200, {"verdict": "PASS", "sample_sizes": {"candidate": 500}})
    asked: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    url: str = ""

    def compare(self, verdict: str, samples: int = 500) -> None:
        self.answer = (200, {"verdict": verdict, "sample_sizes": {"candidate": samples}})

    async def _handle(self, request: web.Request) -> web.Response:
        self.asked.append(dict(request.query))
        self.paths.append(request.path)
        status, body = self.answer
        return web.json_response(body, status=status)


@pytest.fixture
async def evaluation() -> AsyncIterator[EvaluationStub]:
    stub = EvaluationStub()
    app = web.Application()
    app.router.add_get("/v1/compare", stub._handle)
    app.router.add_get("/v1/experiments/{experiment}", stub._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    stub.url = f"http://{host}:{port}"
    yield stub
    await runner.cleanup()


@dataclass
class FakeTraffic:
    """Serves versions in memory; ``fail`` makes deploys fail."""

    served: set[tuple[str, str]] = field(default_factory=set)
    deployed: list[tuple[str, str, str, str]] = field(default_factory=list)
    retired: list[tuple[str, str]] = field(default_factory=list)
    fail: str | None = None

    def deploy(self, model: str, version: str, storage_uri: str, model_format: str) -> str:
        if self.fail:
            raise RuntimeError(self.fail)
        self.deployed.append((model, version, storage_uri, model_format))
        self.served.add((model, version))
        return RUNTIME

    def retire(self, model: str, version: str) -> None:
        self.retired.append((model, version))
        self.served.discard((model, version))

    def url(self, model: str, version: str) -> str | None:
        return RUNTIME if (model, version) in self.served else None


@dataclass
class FakeRegistry:
    """Aliases in memory; ``down`` makes every call fail like an MLflow outage."""

    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    down: bool = False
    calls: int = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise RegistryUnavailable("MLflow failed: connection refused")

    def alias_version(self, model: str, alias: str) -> str | None:
        self._check()
        return self.aliases.get((model, alias))

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._check()
        if version == "404":
            raise NotFound(f"{model} has no version {version}")
        self.aliases[(model, alias)] = version

    def remove_alias(self, model: str, alias: str) -> None:
        self._check()
        self.aliases.pop((model, alias), None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    """One service's surroundings; ``start()`` runs the app on them (again: a restart)."""

    database: Path
    evaluation: EvaluationStub
    traffic: FakeTraffic
    registry: FakeRegistry
    clock: Clock

    @asynccontextmanager
    async def start(self, **overrides: Any) -> AsyncIterator[Retraining]:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{self.database}",
            "log_json": False,
            "evaluation_url": self.evaluation.url,
            "runtime_url": RUNTIME,
            "controller_interval_s": 3600,  # the tests tick by hand
        }
        values.update(overrides)
        registry = new_registry()
        app = create_app(
            RetrainingSettings(**values),
            registry=registry,
            traffic_backend=self.traffic,
            retire_grace_s=5.0,
            clock=self.clock,
        )
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://retraining") as c:
                yield Retraining(app, c, registry)


@pytest.fixture
def env(tmp_path: Path, evaluation: EvaluationStub) -> Env:
    # The champion is served already (the runtime loaded it at start-up): the controller's
    # first tick, which runs at start-up beside the test, finds nothing to serve again.
    traffic = FakeTraffic(served={("credit-risk", "3")})
    return Env(tmp_path / "retraining.db", evaluation, traffic, FakeRegistry(), Clock())


def use_registry(running: Retraining, registry: FakeRegistry) -> None:
    """Swap the fake registry in (the app builds a real one only with an MLflow URI)."""
    controller = running.app.state.controller
    controller._registry = registry
    controller._pending._registry = registry


async def step(running: Retraining, clock: Clock, seconds: float = 0.25) -> None:
    clock.advance(seconds)
    await running.app.state.controller.tick()


async def test_a_canary_passes_every_step_and_is_promoted(env: Env) -> None:
    async with env.start() as running:
        use_registry(running, env.registry)
        started = await running.client.post("/v1/rollouts", json=CANARY)
        assert started.status_code == 201, started.text
        rollout = started.json()["id"]
        assert env.traffic.deployed == [("credit-risk", "4", "models:/credit-risk/4", "mlflow")]
        assert env.registry.aliases[("credit-risk", "challenger")] == "4"
        assert started.json()["pending_actions"] == []

        await step(running, env.clock)  # 10 % → PASS → 50 %
        state = (await running.client.get(f"/v1/rollouts/{rollout}")).json()["state"]
        assert state["candidate_weight"] == 50
        assert env.evaluation.asked[0]["candidate_weight"] == "0.1"
        assert env.evaluation.asked[0]["since"] == repr(T0)
        assert (
            running.metric(
                "orchard_retraining_rollout_candidate_weight_percent", model="credit-risk"
            )
            == 50
        )

        await step(running, env.clock)  # 50 % → PASS → promoted (100 is the promotion)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "promoted"
        assert env.registry.aliases[("credit-risk", "champion")] == "4"
        assert env.registry.aliases[("credit-risk", "previous")] == "3"
        assert ("credit-risk", "challenger") not in env.registry.aliases
        table = (await running.client.get("/v1/routes")).json()
        assert table["models"]["credit-risk"]["versions"] == [
            {"version": "4", "target_url": RUNTIME, "weight": 100.0, "role": "champion"}
        ]
        assert (
            running.metric(
                "orchard_retraining_rollout_decisions_total", model="credit-risk", action="promote"
            )
            == 1
        )
        assert (
            running.metric(
                "orchard_retraining_rollout_active", model="credit-risk", status="canary"
            )
            == 0
        )

        # The old champion keeps being served through the grace, then is retired.
        await step(running, env.clock, 1.0)
        assert env.traffic.retired == []
        await step(running, env.clock, 5.0)
        assert env.traffic.retired == [("credit-risk", "3")]
        assert (await running.client.get(f"/v1/rollouts/{rollout}")).json()["pending_actions"] == []


async def test_a_fail_rolls_back_and_retires_the_candidate_never_the_champion(env: Env) -> None:
    env.evaluation.compare("FAIL")
    async with env.start() as running:
        use_registry(running, env.registry)
        env.registry.aliases[("credit-risk", "champion")] = "3"
        rollout = (await running.client.post("/v1/rollouts", json=CANARY)).json()["id"]
        await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "rolled_back"
        assert env.registry.aliases == {("credit-risk", "champion"): "3"}
        await step(running, env.clock, 10)
        assert env.traffic.retired == [("credit-risk", "4")]
        versions = (await running.client.get("/v1/routes")).json()["models"]["credit-risk"]
        assert [v["version"] for v in versions["versions"]] == ["3"]


async def test_evaluation_down_pauses_and_it_resumes_when_it_answers(env: Env) -> None:
    env.evaluation.answer = (503, {"error": "database is down"})
    async with env.start() as running:
        rollout = (await running.client.post("/v1/rollouts", json=CANARY)).json()["id"]
        for _ in range(3):
            await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "paused"
        assert "HTTP 503" in body["state"]["pause_reason"]
        assert body["state"]["candidate_weight"] == 10
        assert (
            running.metric("orchard_retraining_evaluation_requests_total", outcome="unreachable")
            == 3
        )
        assert (
            running.metric(
                "orchard_retraining_rollout_active", model="credit-risk", status="paused"
            )
            == 1
        )

        env.evaluation.compare("PASS")
        await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert (body["status"], body["state"]["candidate_weight"]) == ("canary", 50)
        actions = [d["action"] for d in body["state"]["decisions"]]
        assert actions == ["start", "pause", "resume", "advance"]


async def test_without_evaluation_rollouts_never_advance(env: Env) -> None:
    async with env.start(evaluation_url=None) as running:
        rollout = (await running.client.post("/v1/rollouts", json=CANARY)).json()["id"]
        await step(running, env.clock)
        body = (await running.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "paused"
        assert "no evaluation service is configured" in body["state"]["pause_reason"]


async def test_alias_changes_wait_for_the_registry_in_order(env: Env) -> None:
    async with env.start() as running:
        use_registry(running, env.registry)
        env.registry.down = True
        rollout = (await running.client.post("/v1/rollouts", json=CANARY)).json()["id"]
        aborted = await running.client.post(f"/v1/rollouts/{rollout}/abort", json={})
        assert aborted.status_code == 200
        pending = [a["type"] for a in aborted.json()["pending_actions"]]
        assert pending == ["set_alias", "set_alias", "remove_alias", "retire"]
        assert (
            running.metric("orchard_retraining_registry_errors_total", operation="set_alias") >= 1
        )

        env.registry.down = False
        await step(running, env.clock, 10)
        # In order: challenger set, then champion restored and challenger removed.
        assert env.registry.aliases == {("credit-risk", "champion"): "3"}
        assert (await running.client.get(f"/v1/rollouts/{rollout}")).json()["pending_actions"] == []


async def test_start_takes_the_known_champion_and_defaults(env: Env) -> None:
    defaults = {"steps": [20, 100], "step_interval_s": 0.2, "max_wait_s": 60}
    async with env.start(rollout_defaults=defaults) as running:
        use_registry(running, env.registry)
        spec = {"model": "credit-risk", "candidate_version": "4"}
        missing = await running.client.post("/v1/rollouts", json=spec)
        assert missing.status_code == 400
        assert "has no champion" in missing.json()["error"]

        env.registry.aliases[("credit-risk", "champion")] = "3"
        started = await running.client.post("/v1/rollouts", json=spec)
        assert started.status_code == 201
        assert started.json()["spec"]["champion_version"] == "3"
        assert started.json()["spec"]["steps"] == [20, 100]
        assert started.json()["state"]["candidate_weight"] == 20


async def test_a_candidate_that_cannot_be_served_starts_nothing(env: Env) -> None:
    env.traffic.fail = "the runtime at http://runtime.test:8080 is unreachable"
    async with env.start() as running:
        refused = await running.client.post("/v1/rollouts", json=CANARY)
        assert refused.status_code == 503
        assert "cannot serve credit-risk version 4" in refused.json()["error"]
        assert "unreachable" in refused.json()["error"]
        assert (await running.client.get("/v1/rollouts")).json()["rollouts"] == []


async def test_a_lost_candidate_is_served_again(env: Env) -> None:
    async with env.start() as running:
        await running.client.post("/v1/rollouts", json={**CANARY, "step_interval_s": 30})
        env.traffic.served.clear()  # the runtime restarted
        await step(running, env.clock, 11)
        await running.app.state.controller.drain()
        assert ("credit-risk", "4") in env.traffic.served
        assert ("credit-risk", "3") in env.traffic.served


async def test_a_restarted_service_carries_on_from_the_database(env: Env) -> None:
    async with env.start() as first:
        rollout = (await first.client.post("/v1/rollouts", json=CANARY)).json()["id"]
        await step(first, env.clock)
        assert (await first.client.get(f"/v1/rollouts/{rollout}")).json()["state"][
            "candidate_weight"
        ] == 50
    async with env.start() as second:  # the same database file
        assert (
            second.metric(
                "orchard_retraining_rollout_candidate_weight_percent", model="credit-risk"
            )
            == 50
        )
        await step(second, env.clock)
        body = (await second.client.get(f"/v1/rollouts/{rollout}")).json()
        assert body["status"] == "promoted"
        assert [d["action"] for d in body["state"]["decisions"]] == [
            "start",
            "advance",
            "promote",
        ]


async def test_champions_are_refreshed_from_the_registry_and_kept_when_it_is_down(
    env: Env,
) -> None:
    async with env.start(models='["credit-risk"]', champion_refresh_s=30) as running:
        use_registry(running, env.registry)
        env.registry.aliases[("credit-risk", "champion")] = "3"
        await step(running, env.clock)
        table = (await running.client.get("/v1/routes")).json()
        assert table["models"]["credit-risk"]["versions"][0]["version"] == "3"

        env.registry.aliases[("credit-risk", "champion")] = "5"
        await step(running, env.clock, 1)  # not yet due
        assert (await running.client.get("/v1/routes")).json() == table
        env.registry.down = True
        await step(running, env.clock, 31)
        assert (await running.client.get("/v1/routes")).json() == table
        assert (
            running.metric("orchard_retraining_registry_errors_total", operation="read_alias") == 1
        )
        env.registry.down = False
        await step(running, env.clock, 31)
        table = (await running.client.get("/v1/routes")).json()
        assert table["models"]["credit-risk"]["versions"][0]["version"] == "5"


async def test_with_per_version_urls_a_champion_nothing_serves_is_served(env: Env) -> None:
    # Kubernetes: every version has its own InferenceService. A champion set by alias alone
    # (the first version of a model) must be served before the gateway can route to it.
    env.traffic.served.clear()
    async with env.start(models='["credit-risk"]', runtime_url=None) as running:
        use_registry(running, env.registry)
        env.registry.aliases[("credit-risk", "champion")] = "3"
        await step(running, env.clock)
        await running.app.state.controller.drain()
        assert env.traffic.deployed == [("credit-risk", "3", "models:/credit-risk/3", "mlflow")]
        versions = (await running.client.get("/v1/routes")).json()["models"]["credit-risk"][
            "versions"
        ]
        assert [(v["version"], v["target_url"]) for v in versions] == [("3", RUNTIME)]
        await step(running, env.clock, 60)  # served now: not deployed again
        await running.app.state.controller.drain()
        assert len(env.traffic.deployed) == 1


async def test_with_one_shared_runtime_champions_are_left_to_it(env: Env) -> None:
    # Locally the runtime serves champions by alias itself; only rollouts' versions are loaded.
    env.traffic.served.clear()
    async with env.start(models='["credit-risk"]') as running:
        use_registry(running, env.registry)
        env.registry.aliases[("credit-risk", "champion")] = "3"
        await step(running, env.clock)
        await running.app.state.controller.drain()
        assert env.traffic.deployed == []
