"""Query-head reduction by importance measured on calibration data.

Fewer query heads is what lowers the time-variant FLOPs (the ``n_h`` term of the paper's
``C_infer``), which KV pooling does not touch. Heads are removed by greedy backward elimination,
after Michel et al. 2019 ("Are Sixteen Heads Really Better than One?"), with the importance of a
head measured as how much the layer's output error grows without it:

- with a refit to follow, the error is the least-squares residual of the original attention
  output given the remaining heads' outputs (o_proj re-solved), computed from Gram matrices;
- without a refit, it is the error of the sum of the remaining heads' contributions.

Each KV head keeps the same number of query heads, so the result is still a regular GQA layer.
The baseline ``by="index"`` keeps the first heads of each group.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ...arch.canonical import AttentionWeights
from ...errors import ConfigError
from .refit import SELECTION_RIDGE, head_gram

HeadSelection = Literal["importance", "index"]


def _explained_by(gram: torch.Tensor, cross: torch.Tensor, cols: list[int]) -> float:
    g = gram[cols][:, cols]
    lam = SELECTION_RIDGE * float(g.diagonal().mean().clamp_min(1e-30))
    chol = torch.linalg.cholesky(g + lam * torch.eye(len(cols), dtype=g.dtype))
    return float(torch.linalg.solve_triangular(chol, cross[cols], upper=False).pow(2).sum())


def _columns(heads: list[int], d_h: int, extra: list[int]) -> list[int]:
    return [h * d_h + i for h in heads for i in range(d_h)] + extra


def select_query_heads(
    weights: AttentionWeights,
    heads: int,
    calibration: Any | None,
    *,
    by: HeadSelection = "importance",
    refit: bool = True,
) -> tuple[AttentionWeights, dict[str, Any]]:
    """Keep ``heads`` query heads (an equal number per KV head), dropping q rows and o columns.

    Args:
        weights: canonical weights (after KV pooling).
        heads: query heads to keep; a multiple of ``weights.kv_heads``.
        calibration: the layer's calibration (needed for ``by="importance"``).
        by: ``"importance"`` (greedy elimination on calibration data) or ``"index"``.
        refit: whether o_proj is refit afterwards (changes how importance is measured).

    Returns:
        The reduced weights and a record with the kept heads and the elimination order.
    """
    n_h, n_kv, d_h = weights.heads, weights.kv_heads, weights.head_dim
    per_group, size = heads // n_kv, weights.group_size
    kept = {j: list(range(j * size, (j + 1) * size)) for j in range(n_kv)}
    removed: list[int] = []
    if by == "index":
        kept = {j: hs[:per_group] for j, hs in kept.items()}
    elif calibration is None:
        raise ConfigError("choosing query heads by importance needs calibration text")
    else:
        _, head_out = calibration.run_attention(weights)
        target = calibration.target
        if refit:
            with_bias = weights.o_bias is not None
            gram, cross, _ = head_gram(head_out, target, with_bias=with_bias)
            extra = [n_h * d_h] if with_bias else []

            def score(alive: list[int]) -> float:
                return _explained_by(gram, cross, _columns(alive, d_h, extra))
        else:
            contrib = torch.einsum("wshe,dhe->hwsd", head_out, weights.o.to(head_out.dtype))
            flat = contrib.reshape(n_h, -1).to(torch.float64)
            y = target.reshape(-1).to(torch.float64)
            if weights.o_bias is not None:
                y = y - weights.o_bias.to(torch.float64).repeat(target.numel() // target.shape[-1])
            c_gram, c_y = flat @ flat.T, flat @ y

            def score(alive: list[int]) -> float:
                idx = torch.tensor(alive)
                return float(2 * c_y[idx].sum() - c_gram[idx][:, idx].sum())

        while sum(len(hs) for hs in kept.values()) > heads:
            alive = sorted(h for hs in kept.values() for h in hs)
            best: tuple[float, int, int] | None = None
            for j, hs in kept.items():
                if len(hs) <= per_group:
                    continue
                for h in hs:
                    s = score([a for a in alive if a != h])
                    if best is None or s > best[0]:
                        best = (s, j, h)
            assert best is not None
            kept[best[1]].remove(best[2])
            removed.append(best[2])
    order = [h for j in range(n_kv) for h in kept[j]]
    idx = torch.tensor(order)
    reduced = weights.replace(
        q=weights.q[idx],
        o=weights.o[:, idx],
        q_bias=None if weights.q_bias is None else weights.q_bias[idx],
    )
    return reduced, {"kept_heads": order, "removed_in_order": removed, "selection": by}
