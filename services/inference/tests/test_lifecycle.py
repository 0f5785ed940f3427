"""The runtime's life as KServe runs it: its command-line arguments, readiness only once the
model has loaded, and on SIGTERM a drain of in-flight requests, then exit status 0.

These start the real process (``python -m orchard_inference``) with a model whose loading
and predictions wait on files the test creates, so every step happens when the test says.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow.pyfunc
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema

from orchard_inference.__main__ import parse_args

READY_DEADLINE_S = 90.0  # imports of torch and mlflow take seconds on a busy 2-core box
STEP_DEADLINE_S = 30.0
MODEL = "gated"
INFER = f"/v2/models/{MODEL}/infer"

# A pyfunc model whose load waits for `load_gate` and whose every prediction first notes its
# rows' inputs in `started`, then waits for `predict_gate`: the test decides when each happens.
# (Several requests may reach it as one batch.)
GATED_MODEL = textwrap.dedent(
    """
    import os
    import time

    import mlflow
    import pandas as pd
    from mlflow.pyfunc import PythonModel


    def _wait_for(path, limit_s=60.0):
        deadline = time.monotonic() + limit_s
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear within {limit_s}s")
            time.sleep(0.01)


    class GatedModel(PythonModel):
        def load_context(self, context):
            self.files = context.model_config
            _wait_for(self.files["load_gate"])

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            with open(self.files["started"], "a") as out:
                out.writelines(f"{x}\\n" for x in model_input["x"])
            _wait_for(self.files["predict_gate"])
            return pd.DataFrame({"y": model_input["x"] * 2.0})


    mlflow.models.set_model(GatedModel())
    """
)


class Gates:
    """The files the gated model waits on or writes."""

    def __init__(self, root: Path) -> None:
        self.load = root / "load-gate"
        self.predict = root / "predict-gate"
        self.started = root / "started"

    def started_rows(self) -> list[float]:
        """The inputs of the rows that reached the model, in the order they did."""
        text = self.started.read_text() if self.started.exists() else ""
        return [float(line) for line in text.splitlines()]


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path)


@pytest.fixture
def mnt_models(tmp_path: Path, gates: Gates) -> Path:
    """/mnt/models as KServe's storage initializer leaves it: the gated MLflow model."""
    code = tmp_path / "gated_model.py"
    code.write_text(GATED_MODEL)
    path = tmp_path / "mnt" / "models"
    # No input example (it would run the model, which waits on the gates) and no type hints:
    # MLflow warns about both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(code),
            model_config={
                "load_gate": str(gates.load),
                "predict_gate": str(gates.predict),
                "started": str(gates.started),
            },
            signature=ModelSignature(
                inputs=Schema([ColSpec(DataType.double, "x")]),
                outputs=Schema([ColSpec(DataType.double, "y")]),
            ),
            pip_requirements=["mlflow"],
        )
    return path


def _until(condition: object, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``condition`` (a callable) until true; fail with the log if the process dies."""
    assert callable(condition)
    deadline = time.monotonic() + STEP_DEADLINE_S
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, (
            f"runtime exited while waiting for {what}:\n{log.read_text()}"
        )
        time.sleep(0.02)  # polling interval, not a wait for an outcome
    raise AssertionError(f"no {what} within {STEP_DEADLINE_S}s:\n{log.read_text()}")


def _status(port: int, path: str) -> int | None:
    """The status of GET ``path``, or None while nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _body(x: float) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}
    ).encode()


StartRuntime = Callable[..., tuple[subprocess.Popen[bytes], Path]]


@pytest.fixture
def start_runtime(tmp_path: Path, free_port: int, mnt_models: Path) -> Iterator[StartRuntime]:
    """Start the runtime as KServe's ServingRuntime does (its args), serving the gated model;
    keyword arguments are extra environment variables. Returns the process and its log."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**extra_env: str) -> tuple[subprocess.Popen[bytes], Path]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORCHARD_"))}
        env.update({"ORCHARD_INFERENCE_SHUTDOWN_GRACE_S": "30", **extra_env})
        args = [f"--model_name={MODEL}", f"--model_dir={mnt_models}", f"--http_port={free_port}"]
        log = tmp_path / "runtime.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "orchard_inference", *args], env=env, stdout=out, stderr=out
            )
        processes.append(process)
        return process, log

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.integration
def test_kserve_args_serve_the_model_dir_and_readiness_waits_for_the_load(
    start_runtime: StartRuntime, free_port: int, gates: Gates
) -> None:
    process, log = start_runtime()
    _until(lambda: _status(free_port, "/v2/health/live") == 200, "liveness", process, log)
    # Alive but loading: not ready, and the model says why.
    assert _status(free_port, "/v2/health/ready") == 503
    assert _status(free_port, f"/v2/models/{MODEL}/ready") != 200
    gates.load.touch()
    _until(lambda: _status(free_port, "/v2/health/ready") == 200, "readiness", process, log)
    gates.predict.touch()
    connection = http.client.HTTPConnection("127.0.0.1", free_port, timeout=10)
    connection.request("POST", INFER, _body(1.5), {"content-type": "application/json"})
    reply = connection.getresponse()
    assert reply.status == 200
    assert json.loads(reply.read())["outputs"][0]["data"] == [3.0]
    connection.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STEP_DEADLINE_S) == 0, log.read_text()


# Batched, model calls run in a worker thread; unbatched, on the event loop, which the gated
# model then blocks: the drain must hold either way.
@pytest.mark.integration
@pytest.mark.parametrize("batching", ["true", "false"], ids=["batched", "unbatched"])
def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0(
    start_runtime: StartRuntime, free_port: int, gates: Gates, batching: str
) -> None:
    process, log = start_runtime(ORCHARD_INFERENCE_BATCH_ENABLED=batching)
    gates.load.touch()
    _until(lambda: _status(free_port, "/v2/health/ready") == 200, "readiness", process, log)

    # Keep-alive connections, each accepted by the server (a first request answered).
    connections = [
        http.client.HTTPConnection("127.0.0.1", free_port, timeout=STEP_DEADLINE_S)
        for _ in range(4)
    ]
    for connection in connections:
        connection.request("GET", "/v2/health/live")
        assert connection.getresponse().read()
    first, *queued, uploading = connections
    # One request reaches the model and waits on the gate (unbatched, it blocks the loop) ...
    first.request("POST", INFER, _body(0.0), {"content-type": "application/json"})
    _until(lambda: gates.started_rows(), "prediction in the model", process, log)
    # ... then two more arrive, and one that is still uploading its body when SIGTERM comes.
    for x, connection in enumerate(queued, start=1):
        connection.request("POST", INFER, _body(float(x)), {"content-type": "application/json"})
    upload = _body(10.0)
    uploading.putrequest("POST", INFER)
    uploading.putheader("content-type", "application/json")
    uploading.putheader("content-length", str(len(upload)))
    uploading.endheaders(upload[:10])

    process.send_signal(signal.SIGTERM)
    gates.predict.touch()
    # New connections are refused while the runtime still drains the upload.
    _until(lambda: _refused(free_port), "refused connection", process, log)
    assert process.poll() is None, "exited before the in-flight upload finished"
    uploading.send(upload[10:])

    for x, connection in enumerate(connections):
        reply = connection.getresponse()
        assert reply.status == 200, (x, reply.read(), log.read_text())
        assert json.loads(reply.read())["outputs"][0]["data"] == [2.0 * (10.0 if x == 3 else x)]
        connection.close()
    assert process.wait(timeout=STEP_DEADLINE_S) == 0, log.read_text()
    assert sorted(gates.started_rows()) == [0.0, 1.0, 2.0, 10.0]


@pytest.mark.integration
def test_a_model_call_past_the_grace_period_does_not_hold_the_exit(
    start_runtime: StartRuntime, free_port: int, gates: Gates
) -> None:
    # Batched model calls run in a worker thread, which nothing can interrupt; the gated
    # model would hold it for a minute, well past the grace period and this test's deadline.
    process, log = start_runtime(
        ORCHARD_INFERENCE_SHUTDOWN_GRACE_S="1", ORCHARD_INFERENCE_BATCH_ENABLED="true"
    )
    gates.load.touch()
    _until(lambda: _status(free_port, "/v2/health/ready") == 200, "readiness", process, log)
    connection = http.client.HTTPConnection("127.0.0.1", free_port, timeout=STEP_DEADLINE_S)
    connection.request("POST", INFER, _body(1.0), {"content-type": "application/json"})
    _until(lambda: gates.started_rows(), "prediction in the model", process, log)

    process.send_signal(signal.SIGTERM)
    # Cancelled when the grace period ended: uvicorn answers 500 if the cancelled request
    # gets to send one, or closes the connection first; both are a cut-off request.
    try:
        status: int | None = connection.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        status = None
    assert status in (500, None)
    connection.close()
    assert process.wait(timeout=STEP_DEADLINE_S) == 0, log.read_text()
    assert "exiting with model calls still running" in log.read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--model_name=credit", "--model_dir=/mnt/models", "--http_port=8080"],
            {"model_name": "credit", "model_dir": "/mnt/models", "port": 8080},
        ),
        (["--model-dir", "/mnt/models"], {"model_dir": "/mnt/models"}),
        ([], {}),
    ],
)
def test_kserve_arguments_become_settings(argv: list[str], expected: dict[str, object]) -> None:
    assert parse_args(argv) == expected


def test_an_unknown_argument_stops_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--model_dri=/mnt/models"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --model_dri" in capsys.readouterr().err
