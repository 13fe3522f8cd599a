"""The scaling-law fit recovers known laws, reports R² and uncertainty, refuses bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gqa_retrofit.errors import DataError
from gqa_retrofit.recipe.scaling import fit_scaling_law

TRUE_A, TRUE_B, TRUE_E = 1.0e8, 0.30, 1.90
SIZES = np.geomspace(1e6, 1e10, 10)


def _losses(noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (TRUE_A / SIZES) ** TRUE_B + TRUE_E + rng.normal(0.0, noise, SIZES.size)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_fit_recovers_known_law_from_noisy_losses(seed: int) -> None:
    # Stated tolerances at noise sigma = 0.005 over 4 decades: b within 5 %, E within 0.03,
    # a within a factor exp(0.25); and the truth within 4 reported standard errors.
    losses = _losses(0.005, seed)
    fit = fit_scaling_law(SIZES, losses)
    assert abs(fit.b - TRUE_B) / TRUE_B < 0.05
    assert abs(fit.e - TRUE_E) < 0.03
    assert abs(math.log(fit.a) - math.log(TRUE_A)) < 0.25
    assert abs(fit.b - TRUE_B) < 4 * fit.b_stderr
    assert abs(fit.e - TRUE_E) < 4 * fit.e_stderr
    assert abs(fit.a - TRUE_A) < 4 * fit.a_stderr
    predicted = (fit.a / SIZES) ** fit.b + fit.e
    r2 = 1 - np.sum((losses - predicted) ** 2) / np.sum((losses - losses.mean()) ** 2)
    assert fit.r2 == pytest.approx(r2, abs=1e-12)
    assert 0.999 < fit.r2 < 1.0
    assert fit.points == 10
    assert (fit.min_params, fit.max_params) == (1e6, 1e10)


def test_fit_is_exact_on_noiseless_losses() -> None:
    fit = fit_scaling_law(SIZES, _losses(0.0, 0))
    assert fit.b == pytest.approx(TRUE_B, rel=1e-6)
    assert fit.e == pytest.approx(TRUE_E, rel=1e-6)
    assert fit.a == pytest.approx(TRUE_A, rel=1e-5)
    assert fit.rmse < 1e-8


def test_robust_fit_resists_one_bad_run() -> None:
    from scipy.optimize import least_squares

    losses = _losses(0.003, 7)
    losses[4] += 0.4  # one diverged run
    fit = fit_scaling_law(SIZES, losses)
    # plain least squares on the same data, for comparison
    plain = least_squares(
        lambda t: np.exp(t[1] * (t[0] - np.log(SIZES))) + t[2] - losses,
        [math.log(fit.a), fit.b, fit.e],
    )
    assert abs(fit.e - TRUE_E) < 0.05
    assert abs(fit.b - TRUE_B) / TRUE_B < 0.1
    assert abs(fit.e - TRUE_E) < abs(plain.x[2] - TRUE_E)


def test_params_for_loss_inverts_the_law() -> None:
    fit = fit_scaling_law(SIZES, _losses(0.0, 0))
    n_star = fit.params_for_loss(2.3)
    assert n_star is not None
    assert fit.loss(n_star) == pytest.approx(2.3, rel=1e-12)
    assert n_star == pytest.approx(TRUE_A / (2.3 - TRUE_E) ** (1 / TRUE_B), rel=1e-5)
    assert fit.params_for_loss(fit.e) is None
    assert fit.params_for_loss(1.0) is None


@pytest.mark.parametrize(
    ("sizes", "losses", "message"),
    [
        ([1e6, 1e7, 1e8], [3.0, 2.5, 2.2], "3 run(s) cannot fit (a/N)^b + E: need at least 4"),
        ([1e6, 1e6, 1e7, 1e7], [3.0, 3.01, 2.5, 2.51], "only 2 distinct size(s)"),
        ([1e6, 1e7, 1e8, 1e9], [2.0, 2.2, 2.4, 2.6], "loss does not decrease with model size"),
        ([1e6, 1e7, 1e8, 1e9], [2.5, 2.5, 2.5, 2.5], "all losses are equal"),
        ([1e6, -1e7, 1e8, 1e9], [3.0, 2.5, 2.2, 2.1], "every non_embedding_params must be"),
        ([1e6, 1e7, 1e8, 1e9], [3.0, float("nan"), 2.2, 2.1], "loss must be a finite positive"),
        ([1e6, 1e7, 1e8], [3.0, 2.5, 2.2, 2.1], "two lists of equal length"),
    ],
)
def test_degenerate_inputs_are_refused(
    sizes: list[float], losses: list[float], message: str
) -> None:
    with pytest.raises(DataError) as err:
        fit_scaling_law(sizes, losses, label="head configuration 8:2")
    assert message in str(err.value)
    assert str(err.value).startswith("head configuration 8:2: ")


def test_uncertainty_of_n_star_matches_the_spread_over_noise_draws() -> None:
    # the delta-method sigma of log N* agrees with the scatter of N* over repeated noisy fits
    target = 2.2
    logs, sigmas = [], []
    for seed in range(40):
        fit = fit_scaling_law(SIZES, _losses(0.005, 100 + seed))
        n_star = fit.params_for_loss(target)
        sigma = fit.params_log_stderr(target)
        assert n_star is not None and sigma is not None
        logs.append(math.log(n_star))
        sigmas.append(sigma)
    spread = float(np.std(logs))
    assert 0.6 < float(np.median(sigmas)) / spread < 1.6
    true_log = math.log(TRUE_A / (target - TRUE_E) ** (1 / TRUE_B))
    assert abs(float(np.mean(logs)) - true_log) < 2 * spread
    assert fit.params_log_stderr(fit.e - 0.1) is None
