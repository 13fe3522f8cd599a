"""The paper's cost quantities (Chen et al., arXiv 2503.09579, Table 3 and eqs. 3, 4, 10-12).

These are the closed forms the recipe optimises. They count matmul FLOPs at 2 per
multiply-accumulate and memory in *values* (multiply by bytes per value for bytes). ``n`` is
the paper's N: non-embedding parameters in the scaling fits.

The exact per-model estimator (``gqa_retrofit.cost``) generalises these to every family; the
recipe and the paper's headline numbers use these functions, so there is one copy of each.
"""

from __future__ import annotations

# The recipe's objective weights (Section 4.1): λ, α, β of ``Z = λ·M^α + (1−λ)·C^β``. This is
# their one home: the estimator, the recipe, ``plan`` and the CLI defaults all read them here.
Z_LAMBDA = 0.9
Z_ALPHA = 0.5
Z_BETA = 1.0 / 3.0
PAPER_Z_WEIGHTS = (Z_LAMBDA, Z_ALPHA, Z_BETA)


def c_infer(n: float, context: float, layers: int, head_dim: int, heads: int) -> float:
    """Decode FLOPs for one token at position T (eq. 3): ``2N + 4·T·L·d_h·n_h``.

    The attention term depends on the number of query heads only, not on KV heads.
    """
    return 2.0 * n + 4.0 * context * layers * head_dim * heads


def m_infer(n: float, context: float, layers: int, head_dim: int, kv_heads: int) -> float:
    """Inference memory in values at context T (eq. 4): ``N + 2·T·L·d_h·n_kv``.

    The KV-cache term depends on the number of KV heads only.
    """
    return n + 2.0 * context * layers * head_dim * kv_heads


def c_prefill(n: float, context: float, layers: int, head_dim: int, heads: int) -> float:
    """Causal prefill FLOPs of T tokens: the sum of per-position decode costs,
    ``T·(2N + 2·T·L·d_h·n_h)`` (the paper gives none; this is the consistent one)."""
    return context * (2.0 * n + 2.0 * context * layers * head_dim * heads)


def c_train_per_token(n: float, context: float, layers: int, head_dim: int, heads: int) -> float:
    """Training FLOPs per token (eqs. 10-11): ``6·(N + 2·L·T̄·d_h·n_h)`` with T̄ = T/2 for
    fixed-length sequences (mean number of preceding tokens)."""
    mean_preceding = context / 2.0
    return 6.0 * (n + 2.0 * layers * mean_preceding * head_dim * heads)


def z_objective(
    memory: float,
    flops: float,
    *,
    lam: float = Z_LAMBDA,
    alpha: float = Z_ALPHA,
    beta: float = Z_BETA,
) -> float:
    """The recipe's objective (Section 4.1): ``Z = λ·M^α + (1−λ)·C^β``."""
    return lam * memory**alpha + (1.0 - lam) * flops**beta
