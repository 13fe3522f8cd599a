"""Per-head features of calibration tokens, and the complex view of RoPE pairs.

RoPE (HF ``rotate_half`` convention) rotates each pair of rows ``(p, p + d_h/2)`` of a query or
key head by a position-dependent angle: it multiplies the complex number
``z_p = x_p + i·x_{p+d_h/2}`` by ``e^{iθ_p t}``, and the score is ``Σ_p Re(z_q · conj(z_k))``.
The only per-head linear maps on keys that commute with RoPE are therefore one complex scalar per
pair; a key map ``c`` is compensated exactly by ``conj(1/c)`` on the queries that read it.
"""

from __future__ import annotations

import torch

from ...arch.canonical import AttentionWeights

# Tokens used for the small statistics (covariances); the refit uses every calibration token.
MAX_STAT_TOKENS = 8192


def sample_tokens(inputs: torch.Tensor, limit: int = MAX_STAT_TOKENS) -> torch.Tensor:
    """Flatten ``[windows, seq, d]`` to ``[tokens, d]`` (float64), evenly strided to ``limit``."""
    flat = inputs.reshape(-1, inputs.shape[-1])
    if flat.shape[0] > limit:
        idx = torch.linspace(0, flat.shape[0] - 1, limit).round().long()
        flat = flat[idx]
    return flat.to(torch.float64)


def project(x: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ rows.T + bias``: one head's features ``[tokens, d_h]`` (float64)."""
    out = x @ rows.to(torch.float64).T
    return out if bias is None else out + bias.to(torch.float64)


def query_heads_of(weights: AttentionWeights, kv_head: int) -> range:
    """Query heads that attend with ``kv_head`` (contiguous groups, as HF ``repeat_kv``)."""
    size = weights.group_size
    return range(kv_head * size, (kv_head + 1) * size)


def to_complex(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Pairs ``(p, p + n/2)`` along ``dim`` as complex numbers (``n/2`` along ``dim``)."""
    real, imag = t.to(torch.float64).chunk(2, dim=dim)
    return torch.complex(real, imag)


def from_complex(c: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of :func:`to_complex`."""
    return torch.cat([c.real, c.imag], dim=dim)


def scale_pairs(rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Multiply the RoPE pairs of head rows ``[d_h, d]`` by complex ``scale [d_h/2]``."""
    return from_complex(to_complex(rows, 0) * scale[:, None], 0).to(rows.dtype)


def scale_pairs_bias(bias: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor | None:
    """Multiply the RoPE pairs of a head bias ``[d_h]`` by complex ``scale [d_h/2]``."""
    if bias is None:
        return None
    return from_complex(to_complex(bias, 0) * scale, 0).to(bias.dtype)
