"""Score (Farrington-Manning) statistic for a difference of two proportions.

The variance of ``p_c - p_b`` is evaluated at the maximum-likelihood rates restricted to the
hypothesised difference (Farrington & Manning 1990; Miettinen & Nurminen 1985 without their
``n/(n-1)`` factor). Under ``delta = 0`` this is the pooled two-proportion z-test. Using the
restricted rather than the observed rates matters for rare events: with 0 errors out of 50
canary requests the observed-rate variance is ~0 and a Wald statistic explodes, while the
restricted variance does not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import optimize

FloatArray = npt.NDArray[np.float64]

__all__ = ["invert", "restricted_variance", "score_z"]


def restricted_variance(
    x_b: npt.ArrayLike, n_b: npt.ArrayLike, x_c: npt.ArrayLike, n_c: npt.ArrayLike, delta: float
) -> FloatArray:
    """Variance of ``p_c - p_b`` at the MLE restricted to ``p_c - p_b = delta``."""
    xb = np.asarray(x_b, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    xc = np.asarray(x_c, dtype=np.float64)
    nc = np.asarray(n_c, dtype=np.float64)
    if delta == 0.0:
        pooled = (xb + xc) / (nb + nc)
        return np.asarray(pooled * (1.0 - pooled) * (1.0 / nb + 1.0 / nc), dtype=np.float64)
    # Closed-form root of the likelihood-equation cubic (Farrington & Manning 1990, Appx.).
    n, x = nb + nc, xb + xc
    a3 = n
    a2 = (nc + 2.0 * nb) * delta - n - x
    a1 = (nb * delta - n - 2.0 * xb) * delta + x
    a0 = xb * delta * (1.0 - delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = (a2 / (3 * a3)) ** 3 - a1 * a2 / (6 * a3**2) + a0 / (2 * a3)
        p = np.sign(q) * np.sqrt(np.maximum((a2 / (3 * a3)) ** 2 - a1 / (3 * a3), 0.0))
        ratio = np.where(p == 0.0, 0.0, q / p**3)
        angle = (np.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    # The MLE may sit on the edge of the feasible set {0 <= p_b, p_b + delta <= 1}.
    p_b = np.clip(2.0 * p * np.cos(angle) - a2 / (3 * a3), max(0.0, -delta), min(1.0, 1.0 - delta))
    p_c = np.clip(p_b + delta, 0.0, 1.0)
    return np.asarray(p_b * (1.0 - p_b) / nb + p_c * (1.0 - p_c) / nc, dtype=np.float64)


def score_z(
    x_b: npt.ArrayLike, n_b: npt.ArrayLike, x_c: npt.ArrayLike, n_c: npt.ArrayLike, delta: float
) -> FloatArray:
    """``(rate_c - rate_b - delta) / sqrt(restricted variance)``; 0 for 0/0, +-inf for x/0."""
    xb = np.asarray(x_b, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    xc = np.asarray(x_c, dtype=np.float64)
    nc = np.asarray(n_c, dtype=np.float64)
    distance = xc / nc - xb / nb - delta
    variance = restricted_variance(xb, nb, xc, nc, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = distance / np.sqrt(variance)
    return np.asarray(np.where(distance == 0.0, 0.0, z), dtype=np.float64)


def invert(
    counts: tuple[int, int, int, int], estimate: float, radius: float
) -> tuple[float, float]:
    """``{delta : |score_z(delta)| < radius}``, the interval of differences the test keeps.

    ``|z|`` grows with the distance of ``delta`` from the estimate, so each end is the single
    root of ``|z(delta)| - radius`` between the estimate and -1 or 1 (Brent's method).
    """

    def excess(delta: float) -> float:
        return abs(float(score_z(*counts, delta))) - radius

    bounds = []
    for outer in (-1.0, 1.0):
        if outer == estimate or excess(outer) <= 0:
            bounds.append(outer)
        else:
            bounds.append(float(optimize.brentq(excess, estimate, outer, xtol=1e-12)))
    return bounds[0], bounds[1]
