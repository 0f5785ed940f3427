"""Injected defects for demos: a candidate that passes its offline checks but fails in serving.

``python -m orchard_pipelines.retrain --defect errors`` scores the holdout with the real model,
so the quality gate passes it, then logs and registers :class:`DefectiveClassifier` in its
place: it loads like any scikit-learn classifier and raises on every prediction, which is
what a canary rollout must catch.

The inference runtime unpickles models without Orchard installed, so this module imports
nothing from ``orchard_pipelines`` and is pickled by value (:func:`pickled_by_value`): the
class definition travels inside the model file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, NoReturn

import cloudpickle
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

__all__ = ["DEFECTS", "DefectiveClassifier", "pickled_by_value"]

DEFECTS: Final = ("errors",)


class DefectiveClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted-looking binary classifier whose ``predict`` and ``predict_proba`` always raise.

    Args:
        classes: The class labels it claims, as the real model's ``classes_``.
        reason: Appended to the ``RuntimeError("injected defect: ...")`` message.
    """

    def __init__(
        self,
        classes: Sequence[Any] = (0, 1),
        reason: str = "this candidate was built to fail in serving (--defect errors)",
    ) -> None:
        self.classes = classes
        self.reason = reason

    @property
    def classes_(self) -> np.ndarray:
        """The class labels, as a fitted scikit-learn classifier exposes them."""
        return np.asarray(self.classes)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, features: Any, labels: Any = None) -> NoReturn:
        """Refuse: a defective model is built already broken, never trained."""
        self._fail()

    def predict(self, features: Any) -> NoReturn:
        """Raise ``RuntimeError`` for every input."""
        self._fail()

    def predict_proba(self, features: Any) -> NoReturn:
        """Raise ``RuntimeError`` for every input."""
        self._fail()

    def _fail(self) -> NoReturn:
        raise RuntimeError(f"injected defect: {self.reason}")


@contextmanager
def pickled_by_value() -> Iterator[None]:
    """Inside the block, cloudpickle embeds this module's classes instead of importing them.

    Registration is process-wide, so it is undone afterwards: other models pickled later
    should keep referring to their modules.
    """
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)
