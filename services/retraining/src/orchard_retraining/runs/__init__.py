"""Pipeline runs: training as a local process or a Kubernetes Job, followed to the end, its
candidate judged by the quality gate, and, when it passes, made the challenger and rolled out.

    PipelineRunner ── PipelineBackend (LocalPipelineBackend here, KubernetesPipelineBackend)
         │         ── PipelineRunStore (the pipeline_runs table)
         └── CandidateGate ── judge_candidate (gate/holdout.npz of the MLflow run)
                           ── RolloutStarter (the rollout controller)
"""

from __future__ import annotations

from orchard_retraining.runs.gate_step import (
    GateJudgment,
    GateRegistry,
    gate_config,
    judge_candidate,
    record_judgment,
)
from orchard_retraining.runs.judging import CandidateGate
from orchard_retraining.runs.local import RESTARTED, LocalPipelineBackend, last_json_object
from orchard_retraining.runs.protocols import RolloutStarter, RunRegistry, TriggerLedger
from orchard_retraining.runs.runner import RUN_ID_TAG, PipelineRunner
from orchard_retraining.runs.step import last_progress, step_arguments
from orchard_retraining.runs.store import PipelineRunStore, check_options, run_dict

__all__ = [
    "RESTARTED",
    "RUN_ID_TAG",
    "CandidateGate",
    "GateJudgment",
    "GateRegistry",
    "LocalPipelineBackend",
    "PipelineRunStore",
    "PipelineRunner",
    "RolloutStarter",
    "RunRegistry",
    "TriggerLedger",
    "check_options",
    "gate_config",
    "judge_candidate",
    "last_json_object",
    "last_progress",
    "record_judgment",
    "run_dict",
    "step_arguments",
]
