"""Running the demo: check the platform, start traffic and the view, play the scenarios."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from rich.console import Console

from orchard_cli.demo.retraining import HttpPlatform
from orchard_cli.demo.scenarios import (
    SCENARIOS,
    ScenarioResult,
    bad_candidate_scenario,
    drift_scenario,
)
from orchard_cli.demo.traffic import TrafficSimulator
from orchard_cli.demo.view import DemoView, LiveView, PlainView, watch_platform
from orchard_cli.lockfile import is_running, read_state
from orchard_cli.retraining_client import RetrainingError

__all__ = ["DemoConfig", "platform_urls", "run_demo"]

_DEFAULT_URLS: Final = {
    "gateway": "http://127.0.0.1:8000",
    "retraining": "http://127.0.0.1:8003",
    "evaluation": "http://127.0.0.1:8002",
}


@dataclass(frozen=True)
class DemoConfig:
    """What ``orchard demo`` was asked to do."""

    gateway_url: str
    retraining_url: str
    evaluation_url: str
    scenarios: tuple[str, ...] = SCENARIOS
    rate: float = 25.0
    timeout_s: float = 900.0
    warmup_s: float = 60.0
    label_delay_s: float = 2.0
    quiet: bool = False


def platform_urls(data_dir: Path) -> dict[str, str]:
    """Each service's URL: from the running ``orchard up`` of ``data_dir``, else the defaults."""
    urls = dict(_DEFAULT_URLS)
    state = read_state(data_dir) if is_running(data_dir) else None
    if state is not None:
        urls |= {name: s.url for name, s in state.services.items() if name in urls}
    return urls


async def _not_ready(client: httpx.AsyncClient, cfg: DemoConfig) -> list[str]:
    problems = []
    for name, url in (
        ("gateway", cfg.gateway_url),
        ("retraining", cfg.retraining_url),
        ("evaluation", cfg.evaluation_url),
    ):
        try:
            response = await client.get(f"{url.rstrip('/')}/readyz")
            if response.status_code != 200:
                problems.append(f"{name} at {url} is not ready ({response.status_code})")
        except httpx.HTTPError:
            problems.append(f"{name} at {url} does not answer")
    return problems


async def _play(
    cfg: DemoConfig, view: DemoView, traffic: TrafficSimulator, platform: HttpPlatform
) -> list[ScenarioResult]:
    results = []
    for name in cfg.scenarios:
        try:
            if name == "drift":
                result = await drift_scenario(
                    platform,
                    traffic,
                    view.note,
                    warmup_s=cfg.warmup_s,
                    timeout_s=cfg.timeout_s,
                    sleep=asyncio.sleep,
                )
            else:
                result = await bad_candidate_scenario(
                    platform, traffic, view.note, timeout_s=cfg.timeout_s, sleep=asyncio.sleep
                )
        except RetrainingError as e:
            result = ScenarioResult(name, False, str(e))
        view.note(f"{name}: {'PASS' if result.ok else 'FAIL'} — {result.reason}")
        results.append(result)
    return results


async def _demo(cfg: DemoConfig, console: Console, view: DemoView) -> int:
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(timeout=10.0, trust_env=False, limits=limits) as client:
        problems = await _not_ready(client, cfg)
        if problems:
            for problem in problems:
                console.print(problem, markup=False, soft_wrap=True)
            console.print("Start the platform with `orchard up` first.", markup=False)
            return 1
        traffic = TrafficSimulator(
            cfg.gateway_url, client, rate=cfg.rate, label_delay=cfg.label_delay_s
        )
        platform = HttpPlatform(cfg.retraining_url, client)
        stop = asyncio.Event()
        background = [
            asyncio.create_task(traffic.run(stop), name="traffic"),
            asyncio.create_task(watch_platform(platform, traffic.stats, view, stop), name="view"),
        ]
        try:
            results = await _play(cfg, view, traffic, platform)
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
        view.summary(results, traffic.stats)
    return 0 if results and all(r.ok for r in results) else 1


def run_demo(cfg: DemoConfig, console: Console) -> int:
    """Play the chosen scenarios; 0 when every one succeeded, 1 otherwise (with the reason)."""
    if cfg.quiet or not console.is_terminal:
        return asyncio.run(_demo(cfg, console, PlainView(console)))
    with LiveView(console) as view:
        return asyncio.run(_demo(cfg, console, view))
