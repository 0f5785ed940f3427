"""The normal-mixture martingale behind every always-valid p-value and confidence sequence.

For an estimate ``d`` of a difference with standard error ``se`` (so ``z = (d - delta0) / se``
is asymptotically standard normal), mixing the Gaussian likelihood ratio over alternatives
``delta ~ N(delta0, tau^2)`` gives the mixture SPRT statistic of Johari et al. 2017 ("Peeking
at A/B tests: why it matters, and what to do about it"):

    L(delta0) = (1 + eta)^(-1/2) * exp(eta / (1 + eta) * z^2 / 2),   eta = tau^2 / se^2.

Under H0 it is (asymptotically) a nonnegative martingale with mean 1, so by Ville's inequality
``P(exists t: L_t >= 1/alpha) <= alpha``: ``min(1, 1/L)`` is a p-value valid at any stopping
time and ``{delta0 : L(delta0) < 1/alpha}`` is a confidence sequence. With the variance
estimated and plugged in this is the Gaussian-mixture asymptotic confidence sequence of
Waudby-Smith et al. 2023 ("Time-uniform central limit theory and asymptotic confidence
sequences"); Howard et al. 2021 ("Time-uniform, nonparametric, nonasymptotic confidence
sequences") give the normal-mixture boundary in closed form. The p-value and the sequence come
from the same ``L``, so the sequence excludes ``delta0`` exactly when its p-value is <= alpha.

The mixture is fixed in standardised units: ``eta = ETA_AT_PLAN * n / planned_n`` where ``n``
is the total sample size, which makes the boundary tightest at ``planned_n`` (the choice of
``rho`` in Waudby-Smith et al. 2023, tuned for alpha = 0.05). It does not depend on the
requested alpha, so the p-value is one number every alpha can be read against.

The functions take numpy arrays so that the validity simulations run vectorised.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ETA_AT_PLAN",
    "always_valid_p_value",
    "half_width",
    "log_mixture_lr",
    "mixture_eta",
]

FloatArray = npt.NDArray[np.float64]

ETA_AT_PLAN: Final = -2.0 * math.log(0.05) + math.log(1.0 - 2.0 * math.log(0.05))
"""Mixture variance ratio eta that minimises the width at ``planned_n`` (alpha = 0.05)."""


def mixture_eta(n_total: npt.ArrayLike, planned_n: float) -> FloatArray:
    """eta = tau^2 / se^2 for a total sample size ``n_total``, tightest at ``planned_n``."""
    if planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    return ETA_AT_PLAN * np.asarray(n_total, dtype=np.float64) / planned_n


def log_mixture_lr(z: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
    """log L for standardised distances ``z`` from the null value (Johari et al. 2017)."""
    z_arr = np.asarray(z, dtype=np.float64)
    eta_arr = np.asarray(eta, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(
            0.5 * (eta_arr / (1.0 + eta_arr) * z_arr * z_arr - np.log1p(eta_arr)),
            dtype=np.float64,
        )


def always_valid_p_value(z: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
    """``min(1, 1/L)``: a p-value valid at any stopping time (Johari et al. 2017)."""
    return np.asarray(np.minimum(1.0, np.exp(-log_mixture_lr(z, eta))), dtype=np.float64)


def half_width(std_error: npt.ArrayLike, eta: npt.ArrayLike, alpha: float) -> FloatArray:
    """Half-width of the level-``1-alpha`` confidence sequence around the estimate.

    Solves ``L = 1/alpha``: ``se * sqrt((1+eta)/eta * (2 log(1/alpha) + log(1+eta)))``
    (Waudby-Smith et al. 2023; Howard et al. 2021).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    eta_arr = np.asarray(eta, dtype=np.float64)
    radius = np.sqrt((1.0 + eta_arr) / eta_arr * (2.0 * math.log(1.0 / alpha) + np.log1p(eta_arr)))
    return np.asarray(np.asarray(std_error, dtype=np.float64) * radius, dtype=np.float64)
