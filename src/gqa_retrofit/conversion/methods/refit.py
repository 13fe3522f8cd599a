"""Least-squares refit of o_proj against the original layer's attention output.

Layer by layer, with inputs from the partially converted model and targets from the original
one, the output projection is solved so that the converted attention reproduces the original
attention output: ``min_W ‖H·Wᵀ − Y‖² + λ‖W‖²`` with ``H`` the per-head outputs entering o_proj.
Because the inputs come from the converted model, each layer also absorbs part of the error of
the layers before it. This was the strongest single ingredient measured on SmolLM2
(``shared/notes/conversion-methods.md``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...arch.canonical import AttentionWeights

# Ridge strength relative to the mean diagonal of the Gram matrix. The refit is pulled towards
# the pooled o_proj (not towards zero), so little calibration data cannot overfit it far.
RIDGE = 1e-2
# Ridge used when only choosing heads (explained variance), where a small value is enough.
SELECTION_RIDGE = 1e-6


def head_gram(
    heads: torch.Tensor, target: torch.Tensor, *, with_bias: bool
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(HᵀH, HᵀY, ‖Y‖²)`` in float64, ``H`` the flattened head outputs (plus a ones column)."""
    h = heads.reshape(-1, heads.shape[-2] * heads.shape[-1])
    y = target.reshape(-1, target.shape[-1])
    if with_bias:
        h = torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)
    gram = torch.zeros(h.shape[1], h.shape[1], dtype=torch.float64)
    cross = torch.zeros(h.shape[1], y.shape[1], dtype=torch.float64)
    for hc, yc in zip(torch.split(h, 4096), torch.split(y, 4096)):
        hc = hc.to(torch.float64)
        gram += hc.T @ hc
        cross += hc.T @ yc.to(torch.float64)
    return gram, cross, float(y.to(torch.float64).pow(2).sum())


def solve_ridge(
    gram: torch.Tensor, cross: torch.Tensor, prior: torch.Tensor, ridge: float = RIDGE
) -> torch.Tensor:
    """``argmin_W ‖HW − Y‖² + λ‖W − W₀‖²`` from ``G = HᵀH``, ``B = HᵀY`` and ``W₀ = prior``.

    ``λ = ridge · mean(diag G)``.
    """
    lam = ridge * float(gram.diagonal().mean().clamp_min(1e-30))
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    return prior + torch.linalg.solve(gram + lam * eye, cross - gram @ prior)


def refit_output(
    weights: AttentionWeights, calibration: Any
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Refit o_proj (and its bias, if any) so the layer reproduces the original output.

    Args:
        weights: converted canonical weights of the layer.
        calibration: the layer's :class:`~gqa_retrofit.conversion.calibration.LayerCalibration`.

    Returns:
        Weights with a new ``o`` (and ``o_bias``) and a record of the relative output error
        before and after the refit.
    """
    out, heads = calibration.run_attention(weights)
    target = calibration.target
    with_bias = weights.o_bias is not None
    gram, cross, total = head_gram(heads, target, with_bias=with_bias)
    d, n_h, d_h = weights.o.shape
    prior = weights.o.reshape(d, n_h * d_h).T.to(torch.float64)
    if weights.o_bias is not None:
        prior = torch.cat([prior, weights.o_bias.to(torch.float64)[None]])
    solution = solve_ridge(gram, cross, prior)  # [n_h*d_h (+1), d]
    before = float((out - target).to(torch.float64).pow(2).sum()) / max(total, 1e-30)
    after = max(
        0.0,
        (total - 2 * float((solution * cross).sum()) + float((solution * (gram @ solution)).sum()))
        / max(total, 1e-30),
    )
    matrix = solution[: n_h * d_h].T.reshape(d, n_h, d_h).to(weights.o.dtype)
    o_bias = solution[-1].to(weights.o_bias.dtype) if weights.o_bias is not None else None
    record = {"relative_error_before": round(before, 6), "relative_error_after": round(after, 6)}
    return weights.replace(o=matrix, o_bias=o_bias), record
