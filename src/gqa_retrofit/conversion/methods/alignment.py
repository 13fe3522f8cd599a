"""Orthogonal alignment of the KV heads of a group before merging them.

After Jin et al. (arXiv 2412.20677, "Align attention heads before merging them", code
fpcsong/mha2gqa): heads of a group are rotated towards each other with maps folded into the
weights, so the model is output-identical before pooling and the mean of aligned heads loses
less than the mean of raw heads.

- values: a full orthogonal ``R_j`` per head (Procrustes on calibration values),
  ``W_V ← RᵀW_V``, ``W_O ← W_O R`` on the query heads that read it;
- keys: only RoPE-commuting maps, one unit complex scalar per ``(p, p + d_h/2)`` pair, with the
  same rotation applied to the queries that read it.
"""

from __future__ import annotations

from typing import Any

import torch

from ...arch.canonical import AttentionWeights
from ._features import (
    project,
    query_heads_of,
    sample_tokens,
    scale_pairs,
    scale_pairs_bias,
    to_complex,
)

_ITERATIONS = 3  # rounds of "align every head to the group mean"


def _bias(t: torch.Tensor | None, j: int) -> torch.Tensor | None:
    return None if t is None else t[j]


def align_keys(
    weights: AttentionWeights, groups: list[list[int]], x: torch.Tensor
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Rotate each key head's RoPE pairs towards its group (queries compensated exactly).

    Args:
        weights: canonical weights.
        groups: KV heads merged together later.
        x: calibration attention inputs ``[tokens, d]``.

    Returns:
        Aligned weights (same geometry, same function) and a record of the mean cosine between
        each head and its group mean before and after.
    """
    q, k = weights.q.clone(), weights.k.clone()
    q_bias = None if weights.q_bias is None else weights.q_bias.clone()
    k_bias = None if weights.k_bias is None else weights.k_bias.clone()
    keys = {j: to_complex(project(x, k[j], _bias(k_bias, j)), 1) for g in groups for j in g}
    before, after = [], []
    for group in groups:
        if len(group) < 2:
            continue
        phases = {j: torch.ones(keys[j].shape[1], dtype=torch.complex128) for j in group}
        before.append(_group_similarity([keys[j] for j in group]))
        for _ in range(_ITERATIONS):
            ref = torch.stack([keys[j] * phases[j] for j in group]).mean(0)
            for j in group:
                s = (keys[j] * ref.conj()).sum(0)
                phases[j] = s.conj() / s.abs().clamp_min(1e-30)
        after.append(_group_similarity([keys[j] * phases[j] for j in group]))
        for j in group:
            k[j] = scale_pairs(k[j], phases[j])
            if k_bias is not None:
                k_bias[j] = scale_pairs_bias(k_bias[j], phases[j])  # type: ignore[assignment]
            for h in query_heads_of(weights, j):
                q[h] = scale_pairs(q[h], phases[j])
                if q_bias is not None:
                    q_bias[h] = scale_pairs_bias(q_bias[h], phases[j])  # type: ignore[assignment]
    record = {"key_similarity_before": before, "key_similarity_after": after}
    return weights.replace(q=q, k=k, q_bias=q_bias, k_bias=k_bias), record


def _group_similarity(feats: list[torch.Tensor]) -> float:
    """Mean cosine similarity between each head's features and the group mean."""
    mean = torch.stack(feats).mean(0)
    sims = [
        float((f.conj() * mean).sum().real / (f.abs().norm() * mean.abs().norm()).clamp_min(1e-30))
        for f in feats
    ]
    return round(sum(sims) / len(sims), 6)


def align_values(
    weights: AttentionWeights, groups: list[list[int]], x: torch.Tensor
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Rotate each value head towards its group by an orthogonal map folded into o_proj.

    Args:
        weights: canonical weights.
        groups: KV heads merged together later.
        x: calibration attention inputs ``[tokens, d]``.

    Returns:
        Aligned weights (same geometry, same function) and a record of the mean cosine between
        each head and its group mean before and after.
    """
    v, o = weights.v.clone(), weights.o.clone()
    v_bias = None if weights.v_bias is None else weights.v_bias.clone()
    values = {j: project(x, v[j], _bias(v_bias, j)) for g in groups for j in g}
    before, after = [], []
    for group in groups:
        if len(group) < 2:
            continue
        d_h = values[group[0]].shape[1]
        rots = {j: torch.eye(d_h, dtype=torch.float64) for j in group}
        before.append(_group_similarity([values[j] for j in group]))
        for _ in range(_ITERATIONS):
            ref = torch.stack([values[j] @ rots[j] for j in group]).mean(0)
            for j in group:
                u, _, wt = torch.linalg.svd(values[j].T @ ref)
                rots[j] = u @ wt
        after.append(_group_similarity([values[j] @ rots[j] for j in group]))
        for j in group:
            r = rots[j]
            v[j] = (r.T @ v[j].to(torch.float64)).to(v.dtype)
            if v_bias is not None:
                v_bias[j] = (r.T @ v_bias[j].to(torch.float64)).to(v_bias.dtype)
            for h in query_heads_of(weights, j):
                o[:, h] = (o[:, h].to(torch.float64) @ r).to(o.dtype)
    record = {"value_similarity_before": before, "value_similarity_after": after}
    return weights.replace(v=v, o=o, v_bias=v_bias), record


def align_heads(
    weights: AttentionWeights, groups: list[list[int]], inputs: torch.Tensor
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Both alignment steps (keys, then values); the model's function is unchanged.

    Args:
        weights: canonical weights.
        groups: KV heads merged together later.
        inputs: calibration attention inputs ``[..., d]``.
    """
    x = sample_tokens(inputs)
    weights, key_record = align_keys(weights, groups, x)
    weights, value_record = align_values(weights, groups, x)
    return weights, {**key_record, **value_record}
