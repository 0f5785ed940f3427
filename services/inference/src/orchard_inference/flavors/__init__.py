"""Model flavors: one ``ModelLoader`` per MLflow flavor, ``python_function`` as the fallback."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from orchard_inference.flavors.base import ModelLoader, Outputs, Predictor
from orchard_inference.flavors.pyfunc import PyfuncLoader
from orchard_inference.flavors.pytorch import PyTorchLoader
from orchard_inference.flavors.sklearn import SklearnLoader

__all__ = [
    "ModelLoader",
    "Outputs",
    "Predictor",
    "PyTorchLoader",
    "PyfuncLoader",
    "SklearnLoader",
    "choose_loader",
    "default_loaders",
]


def default_loaders(
    *, torch_threads: int = 1, device: str = "auto", torch_fp16: bool = False
) -> tuple[ModelLoader, ...]:
    """The built-in loaders, most specific first, pyfunc last."""
    return (
        SklearnLoader(),
        PyTorchLoader(torch_threads, device, fp16=torch_fp16),
        PyfuncLoader(),
    )


def choose_loader(loaders: Sequence[ModelLoader], flavors: Collection[str]) -> ModelLoader:
    """The first loader whose flavor the model has.

    Raises:
        ValueError: no loader reads any of the model's flavors.
    """
    for loader in loaders:
        if loader.flavor in flavors:
            return loader
    known = ", ".join(loader.flavor for loader in loaders)
    raise ValueError(f"no loader for the model's flavors ({', '.join(flavors)}); known: {known}")
