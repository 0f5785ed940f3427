"""``orchard demo``: drive the closed loop of a running platform with simulated traffic."""

from orchard_cli.demo.run import DemoConfig, platform_urls, run_demo

__all__ = ["DemoConfig", "platform_urls", "run_demo"]
