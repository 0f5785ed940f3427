"""One served model version: its load state, schema, predictor and bound metrics."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchard_core import InferenceError, InvalidInput, ModelNotReady
from orchard_core.oip import InferTensor, RequestedOutput, datatype_of
from orchard_inference.flavors import Outputs, Predictor
from orchard_inference.metrics import ModelMetrics
from orchard_inference.schema import FreeSchema, InputSchema, ModelInput

__all__ = ["ModelState", "ServedModel"]


class ModelState(StrEnum):
    """Where a model version is in its life (KServe's repository states, minus unloaded).

    EVICTED: released to stay within the memory budget or model count; the next request for
    it loads it again (from ``ServedModel.pinned_uri``).
    """

    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    EVICTED = "EVICTED"


@dataclass(eq=False, slots=True)
class ServedModel:
    """A model version the runtime serves, or is loading, or failed to load."""

    name: str
    uri: str
    version: str | None = None
    #: Label children, bound once the version is known.
    metrics: ModelMetrics | None = None
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    schema: InputSchema = field(default_factory=FreeSchema)
    predictor: Predictor | None = None
    #: Downloaded files, removed when the version is unloaded.
    workdir: str | None = None
    #: A URI that loads exactly this version again (set once loaded; used after eviction).
    pinned_uri: str | None = None
    #: Estimated memory of the loaded model, in bytes (see ``ModelRepository``).
    size_bytes: int = 0
    #: Requests computing with this version now; a version with requests is never evicted.
    in_flight: int = 0
    #: When the load failed (the repository's monotonic clock), for the retry back-off.
    failed_at: float | None = None

    @property
    def platform(self) -> str:
        return self.predictor.platform if self.predictor is not None else ""

    def not_ready_message(self) -> str:
        """Why this version cannot answer (only meaningful when it is not READY)."""
        if self.state is ModelState.FAILED:
            return f"model '{self.name}' failed to load: {self.reason}"
        if self.state is ModelState.EVICTED:
            return f"model '{self.name}' was evicted to free memory; retry to load it again"
        return f"model '{self.name}' is loading"

    def ready_predictor(self) -> Predictor:
        """The predictor, or ``ModelNotReady`` (503) saying why there is none."""
        predictor = self.predictor
        if self.state is not ModelState.READY or predictor is None:
            raise ModelNotReady(self.not_ready_message())
        return predictor

    def wanted_outputs(
        self, predictor: Predictor, requested: Sequence[RequestedOutput] | None
    ) -> tuple[str, ...] | None:
        """The requested output names, checked against what the model declares."""
        if not requested:
            return None
        names = tuple(r.name for r in requested)
        known = [m.name for m in predictor.outputs]
        for name in names:
            if known and name not in known:
                raise InvalidInput(self._unknown_output(name, known))
        return names

    def _unknown_output(self, name: str, known: Iterable[str]) -> str:
        return f"unknown output '{name}'; the model's outputs are: {', '.join(known)}"

    def predict(
        self, predictor: Predictor, data: ModelInput, wanted: tuple[str, ...] | None
    ) -> list[InferTensor]:
        """Run the model and return its outputs as response tensors (blocking).

        Raises:
            InvalidInput: a requested output the model did not produce.
            InferenceError: the model raised; the message says what it said.
        """
        try:
            outputs: Outputs = predictor.predict(
                data, None if wanted is None else frozenset(wanted)
            )
        except Exception as exc:
            raise InferenceError(
                f"model '{self.name}' version {self.version} failed to predict: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        names = wanted if wanted is not None else tuple(outputs)
        tensors = []
        for name in names:
            array = outputs.get(name)
            if array is None:
                raise InvalidInput(self._unknown_output(name, outputs))
            try:
                tensors.append(InferTensor(name, datatype_of(array), array))
            except TypeError as exc:
                raise InferenceError(f"model '{self.name}' output '{name}': {exc}") from exc
        return tensors

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The OIP v2 model metadata, plus the load ``state`` (and ``reason`` if any)."""
        outputs = self.predictor.outputs if self.predictor is not None else ()
        body: dict[str, Any] = {
            "name": self.name,
            "versions": versions,
            "platform": self.platform,
            "inputs": [m.to_json() for m in self.schema.metadata()],
            "outputs": [m.to_json() for m in outputs],
            "state": self.state.value,
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return body

    def release(self) -> None:
        """Drop the predictor and any downloaded files (the version is being unloaded)."""
        self.predictor = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
