"""``python -m orchard_inference`` / ``orchard-inference``: serve the configured models.

Settings come from ``ORCHARD_INFERENCE_*`` variables. The command line takes the arguments
KServe passes to a ServingRuntime container (``--model_name={{.Name}}``,
``--model_dir=/mnt/models``, ``--http_port=8080``); they win over the variables.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import MutableMapping, Sequence

from orchard_core import load_settings, serve
from orchard_inference.app import create_app
from orchard_inference.settings import InferenceSettings

__all__ = ["main", "parse_args"]

_log = logging.getLogger("orchard.inference")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchard-inference",
        description=(
            "Orchard's inference runtime (Open Inference Protocol v2 and KServe v1). "
            "Every option also has an ORCHARD_INFERENCE_* variable; options win."
        ),
    )
    # KServe's spelling is model_name; the dashed one is accepted because people type it.
    parser.add_argument(
        "--model_name",
        "--model-name",
        dest="model_name",
        help="name to serve the --model_dir model under (ORCHARD_INFERENCE_MODEL_NAME)",
    )
    parser.add_argument(
        "--model_dir",
        "--model-dir",
        dest="model_dir",
        help=(
            "a model folder as KServe's storage initializer fills /mnt/models "
            "(ORCHARD_INFERENCE_MODEL_DIR)"
        ),
    )
    parser.add_argument(
        "--http_port",
        "--http-port",
        dest="port",
        type=int,
        help="TCP port for HTTP (ORCHARD_INFERENCE_PORT)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> dict[str, object]:
    """The settings the command line sets (only those given), by settings field name.

    Unknown arguments stop the process with a usage message (status 2): a misspelt
    ``--model_dir`` must not start a runtime that serves nothing and reports ready.
    """
    namespace = _parser().parse_args(argv)
    return {key: value for key, value in vars(namespace).items() if value is not None}


def main(argv: Sequence[str] | None = None) -> None:
    """Load settings from the environment and arguments, build the app, serve until SIGTERM."""
    settings = load_settings(InferenceSettings, **parse_args(argv))
    limit_native_threads(settings.native_threads)
    serve(create_app(settings), settings)
    _leave_stuck_model_calls()


NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads(threads: int, environ: MutableMapping[str, str] | None = None) -> None:
    """Size the native thread pools before sklearn/numpy start them (explicit env wins).

    The variables are read when each runtime initialises, and the model libraries are
    imported only when the first model loads, so setting them here covers every thread,
    including the batching workers (a threadpoolctl call would only cover its own thread).
    """
    env = os.environ if environ is None else environ
    for name in NATIVE_THREAD_VARIABLES:
        env.setdefault(name, str(threads))


def _leave_stuck_model_calls() -> None:
    """Exit now if a model call outlived the shutdown grace period in a worker thread.

    The server has stopped and its requests were cancelled, but a thread cannot be
    interrupted, and Python would wait for it at exit until Kubernetes kills the pod
    (status 137). The status stays 0: the shutdown was the one SIGTERM asked for.
    """
    stuck = [
        thread.name
        for thread in threading.enumerate()
        if thread is not threading.current_thread() and thread.is_alive() and not thread.daemon
    ]
    if stuck:
        _log.warning(
            "exiting with model calls still running in %d thread(s): %s",
            len(stuck),
            ", ".join(stuck),
        )
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
