"""Retrain a model on reference plus production data and register it for the quality gate.

The retraining service's Job runs ``python -m orchard_pipelines.retrain --model credit-risk
--production-data URL --trigger-id ID --pipeline-run-id ID --json``. It:

1. reads evaluation's labelled production export (optional; JSONL, see
   :mod:`orchard_pipelines.retrain_data`), keeping rows with a label and every feature;
2. picks the holdout: with at least 200 usable production rows, a stratified 30 % of them,
   since that is the traffic the model will face; otherwise the reference split (20 %);
3. trains on every row not held out: all reference rows when production supplies the
   holdout (whose metrics then lack ``oracle_roc_auc``: production rows carry no ground
   truth). Credit-risk production rows get sample weights so that, together, they weigh as
   much as the reference rows: there are usually far fewer of them, and they carry the drift
   the retraining is for, but the reference data still covers applicants production has not
   seen lately. Digits simply concatenates (its images do not drift in the demo, and the MLP
   takes no weights);
4. scores the candidate and the ``@champion`` version on the same holdout and logs one MLflow
   run: parameters, metrics (``champion_<metric>`` for the champion's), the reference profile,
   and ``gate/holdout.npz`` (``labels``, ``candidate``, ``champion``) for the gate. The
   reference profile describes the traffic the new version should expect: the recent
   production rows when there are 1,000 or more, else the training rows as weighted; A champion
   that cannot score the holdout fails the run (exit 1) rather than leave the gate half blind;
5. registers the version last, with no alias (the service sets aliases after its gate). If
   anything fails once registration began, every version of that run is deleted again, so no
   half-registered version is left.

``--defect errors`` registers a stand-in that raises on every prediction while the holdout
scores come from the real model (see :mod:`orchard_pipelines.faults`).

Output: human progress and ``orchard-progress <fraction> <stage>`` lines on stderr; with
``--json`` the last stdout line is ``{"model", "version", "run_id", "model_uri", "metrics",
"champion_version", "holdout": {"rows", "source"}, "production_rows"}``. Exit codes: 0 success,
1 training or MLflow failure, 2 bad arguments, unreadable production data or an unreachable
tracking server.

Tracing: with an OTLP endpoint configured (``OTEL_EXPORTER_OTLP_ENDPOINT``), the step is one
``retrain`` span (service ``pipelines``) that continues the trace the retraining service
passes in ``TRACEPARENT``, so a pipeline run's trace runs from its trigger through training
to its gate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence

from mlflow.exceptions import MlflowException

from orchard_core.tracing import (
    MODEL_ATTRIBUTE,
    MODEL_VERSION_ATTRIBUTE,
    context_from_env,
    new_tracer_provider,
    tracer_for,
)
from orchard_pipelines.errors import PipelineError, TrackingServerUnavailable
from orchard_pipelines.faults import DEFECTS
from orchard_pipelines.retrain_data import ProductionDataError
from orchard_pipelines.retrain_run import (
    CHAMPION_ALIAS,
    HOLDOUT_ARTIFACT,
    RetrainOptions,
    RetrainResult,
    retrain,
)
from orchard_pipelines.train import MIN_ROWS, MODELS, _first_line, _format_metrics
from orchard_pipelines.train import _progress_to_stderr as _log_to_stderr

__all__ = [
    "CHAMPION_ALIAS",
    "HOLDOUT_ARTIFACT",
    "ProductionDataError",
    "RetrainOptions",
    "RetrainResult",
    "main",
    "retrain",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.model == "digits" and args.defect:
        parser.error("--defect is supported for --model credit-risk only")
    options = RetrainOptions(
        model=args.model,
        tracking_uri=args.tracking_uri,
        production_data=args.production_data,
        trigger_id=args.trigger_id,
        pipeline_run_id=args.pipeline_run_id,
        experiment=args.experiment,
        seed=args.seed,
        n_rows=args.n_rows,
        defect=args.defect,
    )
    provider = new_tracer_provider("pipelines")
    tracer = tracer_for(provider, "orchard_pipelines")
    attributes = {MODEL_ATTRIBUTE: options.name}
    if args.pipeline_run_id:
        attributes["orchard.pipeline_run_id"] = args.pipeline_run_id
    try:
        # Libraries print progress to stdout; keep stdout for the summary alone.
        with (
            tracer.start_as_current_span(
                "retrain", context=context_from_env(), attributes=attributes
            ) as span,
            _log_to_stderr(),
            contextlib.redirect_stdout(sys.stderr),
        ):
            result = retrain(options, progress=_print_progress)
            span.set_attribute(MODEL_VERSION_ATTRIBUTE, str(result.version))
    except (TrackingServerUnavailable, ProductionDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, MlflowException) as exc:
        print(f"error: {_first_line(str(exc))}", file=sys.stderr)
        return 1
    finally:
        if provider is not None:
            provider.shutdown()  # send the spans before the process ends
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print(
            f"{result.name} version {result.version} ({result.model_uri}, run {result.run_id}): "
            f"{_format_metrics(result.metrics)}"
        )
    return 0


def _print_progress(fraction: float, stage: str) -> None:
    # Parsed by the retraining service: ^orchard-progress ([0-9.]+) (.*)$
    print(f"orchard-progress {fraction:.2f} {stage}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchard_pipelines.retrain",
        description="Retrain a model on reference and production data; register it unaliased.",
    )
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)",
    )
    parser.add_argument(
        "--production-data", help="evaluation's JSONL export: an http(s) URL or a file path"
    )
    parser.add_argument("--trigger-id", help="the retraining trigger, recorded as a tag")
    parser.add_argument("--pipeline-run-id", help="the pipeline run, recorded as a tag")
    parser.add_argument("--experiment", default="orchard")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--n-rows", type=_row_count, default=20_000, help="credit-risk reference rows"
    )
    parser.add_argument(
        "--defect", choices=DEFECTS, help="register a model that fails in serving (demo)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    return parser


def _row_count(text: str) -> int:
    value = int(text)
    if value < MIN_ROWS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_ROWS}")
    return value


if __name__ == "__main__":
    sys.exit(main())
