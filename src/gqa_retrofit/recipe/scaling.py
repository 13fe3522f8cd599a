"""The paper's loss-vs-size law and a robust fit of it (Section 4.1, step 2).

Per head configuration the paper models the loss of a model with N non-embedding parameters as

    loss(N) = (a / N)^b + E                                              (Section 4.1)

``E`` is the irreducible loss (the floor), ``b`` the exponent and ``a`` a size scale. The fit
here is a robust nonlinear least-squares fit (soft-L1 loss, so one bad run does not drag the
curve) in the parameters ``(log a, b, E)`` with ``b > 0`` and ``E >= 0``, started from the best
of a grid of log-log linear fits. It reports R² and one-sigma parameter uncertainties from the
Gauss-Newton covariance ``s²·(JᵀJ)⁻¹`` with ``s² = Σr² / (n − 3)``.

Inverting the law gives the smallest size that reaches a target loss (Section 4.1, step 3):

    N* = a / (target − E)^(1/b)          (only when target > E)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import DataError

#: Fewest runs (distinct sizes) a fit accepts: three parameters plus one degree of freedom.
MIN_POINTS = 4


@dataclass(frozen=True)
class ScalingFit:
    """A fitted ``loss(N) = (a/N)^b + E`` with its quality and uncertainty.

    Attributes:
        a: size scale (same unit as N: non-embedding parameters).
        b: exponent (> 0).
        e: irreducible loss E.
        a_stderr, b_stderr, e_stderr: one-sigma uncertainties (``a_stderr`` by the delta method
            from the uncertainty of ``log a``).
        r2: coefficient of determination of the fit on its own points.
        rmse: root mean square residual (loss units).
        points: number of runs fitted.
        min_params, max_params: the range of N the fit has seen (beyond it is extrapolation).
        covariance: 3×3 covariance of ``(log a, b, E)`` (row-major), for propagated errors.
    """

    a: float
    b: float
    e: float
    a_stderr: float
    b_stderr: float
    e_stderr: float
    r2: float
    rmse: float
    points: int
    min_params: float
    max_params: float
    covariance: tuple[tuple[float, ...], ...] | None = None

    def loss(self, params: float) -> float:
        """Predicted loss at ``params`` non-embedding parameters."""
        return (self.a / params) ** self.b + self.e

    def params_for_loss(self, target: float) -> float | None:
        """``N* = a / (target − E)^(1/b)``: the smallest N reaching ``target``.

        Returns ``None`` when the target is at or below the fitted floor E (unreachable at any
        size).
        """
        gap = target - self.e
        if gap <= 0:
            return None
        return self.a / gap ** (1.0 / self.b)

    def params_log_stderr(self, target: float) -> float | None:
        """One-sigma uncertainty of ``log N*`` at ``target`` by the delta method.

        ``log N* = log a − log(g)/b`` with ``g = target − E`` has the gradient
        ``(1, log(g)/b², 1/(b·g))`` in ``(log a, b, E)``; the variance is ``∇ᵀ Σ ∇``.

        Returns ``None`` when the target is unreachable or no covariance is known.
        """
        gap = target - self.e
        if gap <= 0 or self.covariance is None:
            return None
        grad = np.array([1.0, math.log(gap) / self.b**2, 1.0 / (self.b * gap)])
        var = float(grad @ np.array(self.covariance) @ grad)
        return math.sqrt(max(var, 0.0))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("covariance")
        return data


def _residuals(theta: np.ndarray, log_n: np.ndarray, loss: np.ndarray) -> np.ndarray:
    log_a, b, e = theta
    return np.exp(b * (log_a - log_n)) + e - loss


def _jacobian(theta: np.ndarray, log_n: np.ndarray, loss: np.ndarray) -> np.ndarray:
    log_a, b, _ = theta
    term = np.exp(b * (log_a - log_n))
    return np.stack([term * b, term * (log_a - log_n), np.ones_like(term)], axis=1)


def _initial_guess(log_n: np.ndarray, loss: np.ndarray, label: str) -> np.ndarray:
    """Best log-log line ``log(loss − E) = b·log a − b·log N`` over a grid of floors E."""
    best: tuple[float, np.ndarray] | None = None
    low = float(loss.min())
    for frac in np.linspace(0.0, 0.999, 200):
        e = frac * low
        slope, intercept = np.polyfit(log_n, np.log(loss - e), 1)
        b = -slope
        if b <= 0:
            continue
        theta = np.array([intercept / b, b, e])
        sse = float(np.sum(_residuals(theta, log_n, loss) ** 2))
        if best is None or sse < best[0]:
            best = (sse, theta)
    if best is None:
        raise DataError(
            f"{label}: loss does not decrease with model size: a power law "
            "(a/N)^b + E with b > 0 cannot fit them"
        )
    return best[1]


def fit_scaling_law(
    params: Sequence[float], losses: Sequence[float], *, label: str = "runs"
) -> ScalingFit:
    """Fit ``loss(N) = (a/N)^b + E`` to runs of one head configuration.

    Args:
        params: non-embedding parameter counts N of the runs (> 0).
        losses: their final losses (finite, > 0).
        label: what the runs are (e.g. ``"heads 8, kv_heads 2"``), used in error messages.

    Returns:
        The fitted law with R², RMSE and one-sigma parameter uncertainties.

    Raises:
        DataError: fewer than 4 runs or distinct sizes, non-positive sizes, non-finite or
            non-positive losses, losses that do not decrease with size, or a fit whose
            parameters are not identifiable (singular covariance).
    """
    from scipy.optimize import least_squares

    n = np.asarray(params, dtype=float)
    y = np.asarray(losses, dtype=float)
    if n.shape != y.shape or n.ndim != 1:
        raise DataError(f"{label}: sizes and losses must be two lists of equal length")
    if len(n) < MIN_POINTS:
        raise DataError(
            f"{label}: {len(n)} run(s) cannot fit (a/N)^b + E: need at least {MIN_POINTS} runs "
            "at different sizes (3 parameters + 1 degree of freedom)"
        )
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise DataError(f"{label}: every non_embedding_params must be a positive number")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise DataError(f"{label}: every loss must be a finite positive number")
    distinct = len(np.unique(n))
    if distinct < MIN_POINTS:
        raise DataError(
            f"{label}: only {distinct} distinct size(s): need at least {MIN_POINTS} different "
            "non_embedding_params values to fit 3 parameters"
        )
    if np.ptp(y) == 0:
        raise DataError(f"{label}: all losses are equal ({y[0]}): no size dependence to fit")

    log_n = np.log(n)
    theta0 = _initial_guess(log_n, y, label)
    noise = max(float(np.std(y)) * 0.05, 1e-4)
    lower = [-np.inf, 1e-6, 0.0]
    upper = [np.inf, 10.0, float(y.min())]
    theta0 = np.clip(theta0, [-np.inf, 1e-6, 0.0], [np.inf, 10.0, float(y.min()) * 0.999])
    result = least_squares(
        _residuals,
        theta0,
        jac=_jacobian,
        bounds=(lower, upper),
        loss="soft_l1",
        f_scale=noise,
        args=(log_n, y),
        x_scale="jac",
        max_nfev=5000,
    )
    theta = result.x
    resid = _residuals(theta, log_n, y)
    dof = len(y) - 3
    s2 = float(np.sum(resid**2)) / dof
    jac = _jacobian(theta, log_n, y)
    try:
        cov = np.linalg.inv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        cov = np.full((3, 3), np.nan)
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if not np.all(np.isfinite(stderr)):
        raise DataError(
            f"{label}: the fit's parameters are not identifiable from these runs (singular "
            "covariance): add runs over a wider range of sizes"
        )
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot
    log_a, b, e = (float(v) for v in theta)
    a = math.exp(log_a)
    return ScalingFit(
        a=a,
        b=b,
        e=e,
        a_stderr=a * float(stderr[0]),
        b_stderr=float(stderr[1]),
        e_stderr=float(stderr[2]),
        r2=r2,
        rmse=math.sqrt(float(np.mean(resid**2))),
        points=len(y),
        min_params=float(n.min()),
        max_params=float(n.max()),
        covariance=tuple(tuple(float(v) for v in row) for row in cov),
    )
