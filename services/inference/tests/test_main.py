"""The real runtime process: start-up, readiness, an inference over HTTP, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import numpy as np
import orjson

from orchard_core.oip import decode_infer_response

from .factories import CreditModel, DigitsModel, digits_pixels, logits_of, tensor_body

READY_DEADLINE_S = 90.0  # imports of torch and mlflow take seconds on a busy 2-core box
STOP_DEADLINE_S = 30.0


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    with httpx2.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"runtime exited early:\n{log.read_text()}"
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)  # polling interval, not a wait for an outcome
    raise AssertionError(f"{url} not ready within {READY_DEADLINE_S}s:\n{log.read_text()}")


def test_the_server_process_serves_and_stops_on_sigterm(
    free_port: int, credit_model: CreditModel, digits_model: DigitsModel, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_"))}
    env.update(
        ORCHARD_INFERENCE_PORT=str(free_port),
        ORCHARD_INFERENCE_MODELS=json.dumps(
            {"digits": str(digits_model.path), "credit-risk": str(credit_model.path)}
        ),
    )
    log = tmp_path / "runtime.log"
    base = f"http://127.0.0.1:{free_port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchard_inference"], env=env, stdout=out, stderr=out
        )
    try:
        _wait_ready(process, f"{base}/v2/health/ready", log)
        pixels = digits_pixels(4, seed=2)
        reply = httpx2.post(
            f"{base}/v2/models/digits/infer",
            content=orjson.dumps(tensor_body(pixels)),
            headers={"content-type": "application/json", "x-request-id": "main-1"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == "main-1"
        (logits,) = decode_infer_response(reply.content).outputs
        np.testing.assert_allclose(logits.data, logits_of(digits_model.network, pixels), rtol=1e-5)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_DEADLINE_S) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    loaded = {line.get("model") for line in lines if line["message"].startswith("loaded model")}
    assert loaded == {"digits", "credit-risk"}


def test_a_bad_setting_stops_start_up_with_its_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_"))}
    env["ORCHARD_INFERENCE_MODELS"] = "{broken"
    result = subprocess.run(
        [sys.executable, "-m", "orchard_inference"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert b"ORCHARD_INFERENCE_MODELS" in result.stderr
    assert b"Traceback" not in result.stderr


def test_native_thread_pools_default_to_the_setting_and_explicit_env_wins() -> None:
    from orchard_inference.__main__ import limit_native_threads

    env = {"OPENBLAS_NUM_THREADS": "4"}
    limit_native_threads(1, env)
    assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}


def test_the_running_runtime_limits_openmp_before_sklearn_starts_it(tmp_path: Path) -> None:
    # The variable must be in the server's own environment (OpenMP reads it once, at start).
    code = (
        "import os, orchard_inference.__main__ as m\n"
        "from orchard_inference.settings import InferenceSettings\n"
        "m.limit_native_threads(InferenceSettings().native_threads)\n"
        "from threadpoolctl import threadpool_info\n"
        "import sklearn.ensemble\n"
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'openmp'}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[1]"
