"""Data factories for the gateway's tests: route table files and inference bodies; polling."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import yaml


def write_routes(path: Path, models: dict[str, dict[str, Any]]) -> Path:
    """Write a route table file atomically (as ``orchard up`` would) and return its path."""
    text = yaml.safe_dump({"models": models}) if path.suffix != ".json" else None
    data = orjson.dumps({"models": models}) if text is None else text.encode()
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(data)
    os.replace(staging, path)
    return path


def routes_to(backend: str, *models: str, version: Any = "1") -> dict[str, dict[str, Any]]:
    """Route table entries sending each of ``models`` to ``backend`` at ``version``."""
    return {name: {"backend": backend, "version": version} for name in models}


def infer_payload(**overrides: Any) -> dict[str, Any]:
    """A valid OIP v2 request for a 2x3 FP32 input; keyword arguments replace input fields."""
    tensor: dict[str, Any] = {
        "name": "features",
        "shape": [2, 3],
        "datatype": "FP32",
        "data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    }
    tensor.update(overrides)
    return {"id": "req-1", "inputs": [tensor]}


def infer_body(**overrides: Any) -> bytes:
    """``infer_payload`` serialized, with a deliberate space so byte-for-byte can be checked."""
    return orjson.dumps(infer_payload(**overrides)).replace(b'"inputs":', b'"inputs": ')


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, *, within_s: float = 5.0
) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``within_s`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
