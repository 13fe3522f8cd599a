"""Per-layer cache geometry and, for models whose layers differ, per-layer parameter plans.

Every model's cache is described layer by layer as a :class:`LayerCache`: what one token adds
(K/V vectors, an MLA latent, an indexer key), how many tokens the layer keeps (all, a sliding
window, a chunk) and what fixed-size state it holds whatever the context (the conv window and
recurrent state of gated-DeltaNet / Mamba2 layers). Uniform models get theirs from
:func:`cache_layers`; hybrid models and models with per-layer geometries carry a
:class:`LayerPlan` built by their family reader (:mod:`gqa_retrofit.cost.hybrid`), which also
holds each layer's parameters.

Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .config_reader import ModelShape

# "full": every token cached; "sliding": min(T, W - 1) tokens cached, attends to min(T, W);
# "chunked": llama4's chunked attention (cached like a sliding window of the chunk size,
# attends within the current chunk); "state": a fixed-size recurrent state, no per-token KV;
# "none": no token mixer (an MLP/MoE-only block).
CacheKind = Literal["full", "sliding", "chunked", "state", "none"]


@dataclass(frozen=True)
class LayerCache:
    """What one layer caches.

    ``kv_vectors`` lists ``(count, length)`` of the vectors one token adds (K and V heads, an
    MLA latent and its RoPE key, an indexer key); quantized KV dtypes put their scales per
    vector. ``state_values`` are cached at the activation dtype (conv windows),
    ``state_fp32_values`` in float32 (recurrent / SSM states, as transformers caches them).
    """

    kind: CacheKind
    kv_vectors: tuple[tuple[int, int], ...] = ()
    window: int | None = None
    state_values: int = 0
    state_fp32_values: int = 0
    attention_flops_per_key: int = 0  # 2·n_h·(d_qk + d_v)
    heads: int = 0  # query heads (attention) or state heads (linear attention / Mamba)
    kv_heads: int = 0  # heads of the cache the engine shards over TP (1: one shared latent)

    @property
    def kv_values(self) -> int:
        """Values one token adds to this layer's cache."""
        return sum(count * length for count, length in self.kv_vectors)

    def cached_tokens(self, context: int) -> int:
        """Tokens held after ``context`` tokens (``min(T, W - 1)`` for sliding and chunked
        layers: transformers' ``DynamicSlidingWindowLayer`` keeps ``W - 1``)."""
        if self.kind in ("state", "none"):
            return 0
        if self.window is None:
            return context
        return min(context, self.window - 1)

    def attended_keys(self, position: int) -> int:
        """Keys the token at ``position`` (1-based) attends to."""
        if self.kind in ("state", "none"):
            return 0
        if self.window is None:
            return position
        if self.kind == "chunked":
            return (position - 1) % self.window + 1
        return min(position, self.window)

    def causal_keys_sum(self, context: int) -> int:
        """``Σ_{t=1..T} attended_keys(t)``: keys attended over a causal prefill."""
        if self.kind in ("state", "none"):
            return 0
        w = self.window
        if w is None or context <= w:
            return context * (context + 1) // 2
        if self.kind == "chunked":
            full, rest = divmod(context, w)
            return full * w * (w + 1) // 2 + rest * (rest + 1) // 2
        return w * (w + 1) // 2 + (context - w) * w


@dataclass(frozen=True)
class LayerCost:
    """One layer of a :class:`LayerPlan`: its cache and its parameters."""

    cache: LayerCache
    params: int  # every parameter of the layer (mixer, FFN/MoE, norms)
    active_params: int  # parameters one token uses (routed experts: top-k)
    matmul_params: int  # weights multiplied by each token's activations


@dataclass(frozen=True)
class LayerPlan:
    """Layer-by-layer description of a model whose layers differ."""

    layers: tuple[LayerCost, ...]
    other_params: int  # outside the layers, not embeddings (final norm, ...)
    notes: tuple[str, ...] = ()


def uniform_cache(s: ModelShape, window: int | None, chunked: bool) -> LayerCache:
    """The cache of one layer of a uniform model (every layer the same geometry)."""
    if s.mla is not None:
        m = s.mla
        vectors = [(1, m.kv_lora_rank), (1, m.qk_rope_head_dim)]
        if m.index_head_dim:
            vectors.append((1, m.index_head_dim))
        flops = 2 * s.heads * (m.qk_head_dim + m.v_head_dim)
        kv_heads = 1
    else:
        vectors = [(2 * s.cache_heads, s.head_dim)]
        flops = 4 * s.heads * s.head_dim
        kv_heads = s.cache_heads
    kind: CacheKind = "full" if window is None else ("chunked" if chunked else "sliding")
    return LayerCache(
        kind=kind,
        kv_vectors=tuple(vectors),
        window=window,
        attention_flops_per_key=flops,
        heads=s.heads,
        kv_heads=kv_heads,
    )


def cache_layers(s: ModelShape) -> tuple[LayerCache, ...]:
    """Each layer's :class:`LayerCache` (from the plan when the model has one)."""
    if s.plan is not None:
        return tuple(layer.cache for layer in s.plan.layers)
    chunked = s.chunked_layers or (False,) * s.layers
    return tuple(uniform_cache(s, w, c) for w, c in zip(s.windows, chunked, strict=True))
