"""The closed loop, hands-off: `orchard up`, then both `orchard demo` scenarios against it;
then what the platform's own Prometheus saw of it.

drift: healthy traffic, then drifted traffic; evaluation detects it, retraining retrains,
gates, canaries and promotes a new champion — nobody calls anything but the demo's traffic.
bad-candidate: a candidate that fails in serving is rolled out; the canary rolls it back, the
old champion serves 100 % again and no prediction failed outside the canary's share.

Runs on the local platform's compressed timescales (`orchard up`'s defaults), on its own data
folder and ports, so the promotion it causes touches no other test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

pytestmark = pytest.mark.integration

_UP_DEADLINE_S = 600.0  # the first run trains both demo models on a 2-core machine
_DEMO_DEADLINE_S = 1_500.0
_SERVICES = (
    "mlflow",
    "inference",
    "evaluation",
    "retraining",
    "gateway",
    "prometheus",
    "alertmanager",
)


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def _orchard() -> list[str]:
    script = Path(sys.executable).with_name("orchard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "orchard_cli"]


@dataclass(frozen=True)
class Platform:
    data_dir: Path
    log: Path
    urls: dict[str, str]


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    log: Path
    first_champion: str


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`orchard up` on free ports with its own data folder; stopped with SIGTERM after."""
    data_dir = tmp_path_factory.mktemp("orchard-demo")
    log = data_dir / "orchard-up.log"
    ports = dict(zip(_SERVICES, _free_ports(len(_SERVICES)), strict=True))
    argv = [*_orchard(), "up", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        deadline = time.monotonic() + _UP_DEADLINE_S
        while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"orchard up exited early:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"orchard up not ready:\n{_tail(log)}"
            time.sleep(0.5)  # polling interval
        yield Platform(data_dir, log, urls)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _get(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, timeout=30, trust_env=False)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return response.json()


def _champion(platform: Platform, model: str = "credit-risk") -> str:
    body = _get(
        f"{platform.urls['mlflow']}/api/2.0/mlflow/registered-models/alias",
        name=model,
        alias="champion",
    )
    return str(body["model_version"]["version"])


@pytest.fixture(scope="module")
def demo(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Both scenarios, once, against the platform: `orchard demo --quiet`."""
    first_champion = _champion(platform)
    demo_log = tmp_path_factory.mktemp("demo") / "demo.log"
    with demo_log.open("wb") as out:
        finished = subprocess.run(
            [*_orchard(), "demo", "--quiet", "--data-dir", str(platform.data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=_DEMO_DEADLINE_S,
            check=False,
        )
    return DemoRun(finished.returncode, demo_log, first_champion)


@pytest.mark.timeout(_UP_DEADLINE_S + _DEMO_DEADLINE_S + 120)
def test_the_demo_closes_the_loop_hands_off(platform: Platform, demo: DemoRun) -> None:
    first_champion, demo_log = demo.first_champion, demo.log
    context = f"demo:\n{_tail(demo_log)}\n\nplatform:\n{_tail(platform.log)}"
    assert demo.returncode == 0, context

    retraining = platform.urls["retraining"]
    rollouts = _get(f"{retraining}/v1/rollouts", model="credit-risk")["rollouts"]
    assert [r["status"] for r in rollouts[:2]] == ["rolled_back", "promoted"], context
    bad, good = rollouts[0], rollouts[1]

    # drift: a retrained version, started by evaluation's trigger, is the champion now.
    new_champion = _champion(platform)
    assert new_champion == good["candidate_version"] != first_champion, context
    runs = _get(f"{retraining}/v1/pipeline-runs", model="credit-risk")["pipeline_runs"]
    retrain = next(r for r in runs if r["rollout_id"] == good["id"])
    assert retrain["trigger_id"] is not None, "the retraining was not started by a trigger"
    assert retrain["gate_verdict"] == "passed", retrain["gate"]
    triggers = _get(f"{retraining}/v1/triggers", model="credit-risk")["triggers"]
    trigger = next(t for t in triggers if t["id"] == retrain["trigger_id"])
    # Evaluation's own trigger, or its drift alert through Prometheus and Alertmanager.
    assert trigger["source"] in ("evaluation", "alertmanager"), trigger
    # Every step of the promoted rollout was judged by evaluation (PASS), none by a person.
    advances = [d for d in good["state"]["decisions"] if d["action"] in ("advance", "promote")]
    assert advances, good
    assert all(d["verdict"] and d["verdict"]["verdict"] == "PASS" for d in advances), good

    # bad-candidate: rolled back on evaluation's FAIL; the champion kept its alias and 100 %.
    rollback = bad["state"]["decisions"][-1]
    assert rollback["action"] == "rollback", bad
    assert rollback["verdict"]["verdict"] == "FAIL", bad
    assert _champion(platform) == new_champion
    model = _get(
        f"{platform.urls['mlflow']}/api/2.0/mlflow/registered-models/get", name="credit-risk"
    )
    aliases = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
    assert "challenger" not in aliases, "the challenger alias outlived the rollback"
    # The promotion left `previous` on the champion it replaced, for a rollback by hand.
    assert aliases == {"champion": new_champion, "previous": first_champion}, aliases
    routes = _get(f"{retraining}/v1/routes")["models"]["credit-risk"]["versions"]
    assert [(r["version"], r["weight"], r["role"]) for r in routes] == [
        (new_champion, 100, "champion")
    ], routes


_REPO = Path(__file__).resolve().parents[2]
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$model": "credit-risk",
    "$version": ".+",
    "$job": ".+",
}


def _prometheus(platform: Platform, query: str) -> list[dict[str, Any]]:
    body = _get(f"{platform.urls['prometheus']}/api/v1/query", query=query)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted((_REPO / "monitoring" / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += group["rules"]
    return rules


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with Grafana's variables filled in) for every target."""
    found = []
    for path in sorted((_REPO / "monitoring" / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = list(dashboard.get("panels", []))
        while panels:
            panel = panels.pop()
            panels += panel.get("panels", [])  # rows hold their panels when collapsed
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                for variable, value in _GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                if expr:
                    found.append((dashboard["title"], panel.get("title", ""), expr))
    return found


def _alert_names(contains: str) -> list[str]:
    return [r["alert"] for r in _rules() if "alert" in r and contains in r["expr"]]


@pytest.mark.timeout(_UP_DEADLINE_S + _DEMO_DEADLINE_S + 300)
def test_prometheus_saw_the_loop_and_every_panel_has_data(
    platform: Platform, demo: DemoRun
) -> None:
    if not (platform.data_dir / "prometheus" / "prometheus.yml").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("orchard up did not start Prometheus: install prometheus and alertmanager")
        pytest.skip("Prometheus or Alertmanager is not installed, so orchard up runs without")
    assert demo.returncode == 0, _tail(demo.log)
    printed = platform.log.read_text(errors="replace")
    assert platform.urls["prometheus"] in printed, "orchard up did not print Prometheus' URL"
    assert platform.urls["alertmanager"] in printed
    up = {s["metric"]["job"]: s["value"][1] for s in _prometheus(platform, "up")}
    assert up == dict.fromkeys(("gateway", "inference", "evaluation", "retraining"), "1"), up

    # Every recording rule and every dashboard panel answers with data after the demo.
    records = sorted({r["record"] for r in _rules() if "record" in r})
    assert records, "no recording rules found"
    empty_records = [name for name in records if not _prometheus(platform, name)]
    assert empty_records == [], f"recording rules without data: {empty_records}"
    queries = _panel_queries()
    assert queries, "no dashboard panels found"
    empty = [f"{d} / {t}: {q}" for d, t, q in queries if not _prometheus(platform, q)]
    assert empty == [], "panels without data:\n" + "\n".join(empty)

    # The injected drift made the data-drift alert fire (it may have resolved since).
    drift_alerts = _alert_names("orchard_evaluation_dataset_drift")
    assert drift_alerts, "no alert on orchard_evaluation_dataset_drift"
    fired = _prometheus(
        platform,
        f'max_over_time(ALERTS{{alertname=~"{"|".join(drift_alerts)}",'
        f'alertstate="firing",model="credit-risk"}}[1h])',
    )
    assert fired, f"none of {drift_alerts} fired during the demo"

    # A runtime that stops answering is a target down: frozen (SIGSTOP), since `orchard up`
    # stops the whole platform — Prometheus included — when a service exits.
    state = json.loads((platform.data_dir / "state.json").read_text())
    runtime = psutil.Process(state["services"]["inference"]["pid"])
    target_down = _alert_names("up")
    assert target_down, "no alert on `up`"
    runtime.suspend()
    try:
        deadline = time.monotonic() + 90
        while True:
            alerts = _prometheus(
                platform, f'ALERTS{{alertname=~"{"|".join(target_down)}",job="inference"}}'
            )
            if any(a["metric"]["alertstate"] in ("pending", "firing") for a in alerts):
                break
            assert time.monotonic() < deadline, "no target-down alert for the frozen runtime"
            time.sleep(1)  # polling interval
    finally:
        runtime.resume()
