"""What the pipeline runner depends on, as protocols: the tests hand in their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from orchard_retraining.rollouts import Transition
from orchard_retraining.runs.gate_step import GateRegistry
from orchard_retraining.tables import RolloutRecord

__all__ = ["RolloutStarter", "RunRegistry", "TriggerLedger"]


class RolloutStarter(Protocol):
    """Starts a rollout (the rollout controller): fills the champion when it is omitted and
    applies the rollout defaults."""

    async def start(
        self, spec_data: dict[str, Any], actor: str | None
    ) -> tuple[RolloutRecord, Transition]: ...


class RunRegistry(GateRegistry, Protocol):
    """The model registry as the runner uses it: the gate's needs plus cleaning up."""

    def alias_version(self, model: str, alias: str) -> str | None: ...

    def remove_alias(self, model: str, alias: str) -> None: ...

    def versions_tagged(self, model: str, key: str, value: str) -> list[str]: ...

    def delete_version(self, model: str, version: str) -> None: ...


class TriggerLedger(Protocol):
    """Where a trigger's ``led_to`` is kept up to date (:class:`TriggerIntake`)."""

    def note(self, trigger_id: int, changes: Mapping[str, Any]) -> None: ...
