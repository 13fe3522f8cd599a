"""A shared KV head per group by weighted PCA, with compensating maps folded into q/o.

After the SVD KV-head compression of Yu et al. (arXiv 2406.07056), made RoPE-safe:

- keys: per RoPE pair ``p``, the group's complex key features ``k_{j,p}`` (weighted by the size
  of the queries that read them) are approximated at rank one, ``k_{j,p} ≈ a_{j,p}·s_p`` where
  the shared key ``s_p`` is a complex combination of the heads' rows (so still one linear key
  head); ``conj(a_{j,p})`` is folded into the rows of the query heads of ``j``, which commutes
  with RoPE;
- values: the group's value features, each weighted by ``(Σ_h W_O,hᵀ W_O,h)^{1/2}`` over the
  query heads that read it (so the error is measured after o_proj), are reduced to ``d_h``
  principal directions; the shared value head is that combination of the heads' rows, and each
  head's least-squares map from the shared head, ``v_j ≈ M_jᵀ s``, is folded into o_proj.

With groups of identical heads both approximations are exact.
"""

from __future__ import annotations

from typing import Any

import torch

from ...arch.canonical import AttentionWeights
from ._features import (
    from_complex,
    project,
    query_heads_of,
    sample_tokens,
    scale_pairs,
    scale_pairs_bias,
    to_complex,
)


def _opt(t: torch.Tensor | None, j: int) -> torch.Tensor | None:
    return None if t is None else t[j]


def _shared_key(
    weights: AttentionWeights,
    group: list[int],
    x: torch.Tensor,
    q: torch.Tensor,
    q_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """Shared key head of ``group``; rescales the queries of the group's heads in place."""
    k, k_bias = weights.k, weights.k_bias
    keys = [to_complex(project(x, k[j], _opt(k_bias, j)), 1) for j in group]  # [T, P]
    # Weight each head's pair by the RMS size of the queries that read it.
    scales = []
    for j in group:
        energy = sum(
            to_complex(project(x, weights.q[h], _opt(weights.q_bias, h)), 1).abs().pow(2).mean(0)
            for h in query_heads_of(weights, j)
        )
        scales.append(torch.as_tensor(energy).sqrt())
    stacked = torch.stack([kf * s for kf, s in zip(keys, scales)], dim=2)  # [T, P, m]
    gram = torch.einsum("tpj,tpk->pjk", stacked.conj(), stacked)  # [P, m, m] Hermitian
    _, vecs = torch.linalg.eigh(gram)
    top = vecs[:, :, -1]  # [P, m]: best rank-1 combination per pair
    coef = [scales[n] * top[:, n] for n in range(len(group))]  # [P] complex, per head
    shared = sum(kf * c for kf, c in zip(keys, coef))  # [T, P]
    assert isinstance(shared, torch.Tensor)
    power = shared.abs().pow(2).sum(0).clamp_min(1e-30)
    rows = sum(to_complex(k[j], 0) * c[:, None] for j, c in zip(group, coef))
    assert isinstance(rows, torch.Tensor)
    new_k = from_complex(rows, 0).to(k.dtype)
    new_bias = None
    if k_bias is not None:
        b = sum(to_complex(k_bias[j], 0) * c for j, c in zip(group, coef))
        assert isinstance(b, torch.Tensor)
        new_bias = from_complex(b, 0).to(k_bias.dtype)
    residual, total = 0.0, 0.0
    for j, kf in zip(group, keys):
        a = (shared.conj() * kf).sum(0) / power  # k_j ≈ a·shared, per pair
        residual += float((kf - shared * a).abs().pow(2).sum())
        total += float(kf.abs().pow(2).sum())
        for h in query_heads_of(weights, j):
            q[h] = scale_pairs(q[h], a.conj())
            if q_bias is not None:
                q_bias[h] = scale_pairs_bias(q_bias[h], a.conj())  # type: ignore[assignment]
    return new_k, new_bias, residual / max(total, 1e-30)


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def _shared_value(
    weights: AttentionWeights, group: list[int], x: torch.Tensor, o: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """Shared value head of ``group``; rewrites the o_proj columns of its query heads in place."""
    v, v_bias = weights.v, weights.v_bias
    d_h = weights.head_dim
    values = [project(x, v[j], _opt(v_bias, j)) for j in group]  # [T, d_h]
    roots = []
    for j in group:
        cols = [weights.o[:, h].to(torch.float64) for h in query_heads_of(weights, j)]
        roots.append(_psd_sqrt(sum(c.T @ c for c in cols)))  # type: ignore[arg-type]
    z = torch.cat([vals @ r for vals, r in zip(values, roots)], dim=1)  # [T, m*d_h]
    _, vecs = torch.linalg.eigh(z.T @ z)
    basis = vecs[:, -d_h:]  # [m*d_h, d_h]: top principal directions
    mix = [r @ basis[n * d_h : (n + 1) * d_h] for n, r in enumerate(roots)]  # [d_h, d_h]
    new_v = sum(m.T @ v[j].to(torch.float64) for j, m in zip(group, mix))
    assert isinstance(new_v, torch.Tensor)
    new_bias = None
    if v_bias is not None:
        b = sum(m.T @ v_bias[j].to(torch.float64) for j, m in zip(group, mix))
        assert isinstance(b, torch.Tensor)
        new_bias = b.to(v_bias.dtype)
    shared = project(x, new_v, new_bias)  # [T, d_h]
    gram = shared.T @ shared
    gram += (
        1e-10 * float(gram.diagonal().mean().clamp_min(1e-30)) * torch.eye(d_h, dtype=gram.dtype)
    )
    maps = torch.linalg.solve(gram, torch.stack([shared.T @ vals for vals in values]))
    residual, total = 0.0, 0.0
    for n, j in enumerate(group):
        residual += float((shared @ maps[n] - values[n]).pow(2).sum())
        total += float(values[n].pow(2).sum())
        for h in query_heads_of(weights, j):
            o[:, h] = (o[:, h].to(torch.float64) @ maps[n].T).to(o.dtype)
    return new_v.to(v.dtype), new_bias, residual / max(total, 1e-30)


def pca_pool(
    weights: AttentionWeights,
    groups: list[list[int]],
    inputs: torch.Tensor,
    *,
    keys: bool = True,
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Merge each group of KV heads into one shared head (see the module docstring).

    Args:
        weights: canonical weights.
        groups: source KV heads merged into each new KV head.
        inputs: calibration attention inputs ``[..., d]``.
        keys: use the shared-key construction; False means keys are mean-pooled (for families
            that normalise keys per head, where a linear key map is not exact).

    Returns:
        The pooled weights and a record of the relative residuals per group.
    """
    x = sample_tokens(inputs)
    q, o = weights.q.clone(), weights.o.clone()
    q_bias = None if weights.q_bias is None else weights.q_bias.clone()
    new_k, new_kb, new_v, new_vb = [], [], [], []
    key_res, value_res = [], []
    for group in groups:
        if keys:
            kk, kb, kr = _shared_key(weights, group, x, q, q_bias)
            key_res.append(round(kr, 6))
        else:
            kk = weights.k[group].float().mean(0).to(weights.k.dtype)
            kb = None if weights.k_bias is None else weights.k_bias[group].mean(0)
        vv, vb, vr = _shared_value(weights, group, x, o)
        value_res.append(round(vr, 6))
        new_k.append(kk)
        new_kb.append(kb)
        new_v.append(vv)
        new_vb.append(vb)
    pooled = weights.replace(
        q=q,
        o=o,
        q_bias=q_bias,
        k=torch.stack(new_k),
        v=torch.stack(new_v),
        k_bias=None if weights.k_bias is None else torch.stack(new_kb),  # type: ignore[arg-type]
        v_bias=None if weights.v_bias is None else torch.stack(new_vb),  # type: ignore[arg-type]
    )
    record: dict[str, Any] = {"value_residual": value_res}
    record["key_residual" if keys else "keys"] = key_res if keys else "mean (per-head q/k norm)"
    return pooled, record
