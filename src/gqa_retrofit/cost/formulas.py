"""Exact closed-form costs of a :class:`~gqa_retrofit.cost.config_reader.ModelShape`.

Pure functions, no torch. Conventions (every figure in the package follows them):

- FLOPs are matmul FLOPs, 2 per multiply-accumulate. Element-wise work (norms, activations,
  softmax, RoPE, bias adds) is not counted; the output projection (lm_head) is, also when tied.
- Decode at position T: one new token attending to T keys (itself included), or to
  ``min(T, W)`` keys in a layer with sliding window W. This generalises the paper's
  ``C_infer(T) = 2N + 4·T·L·d_h·n_h`` (eq. 3) to exact matmul counts per family.
- Prefill of T tokens is causal: token t attends to ``min(t, W)`` keys, so the score and value
  products cost the sum of per-position decode terms (``causal=False`` gives the full T×T square
  that eager attention kernels compute and ``FlopCounterMode`` counts).
- KV-cache bytes after T tokens: each full-attention layer holds T tokens, a sliding layer
  ``min(T, W - 1)`` (transformers' ``DynamicSlidingWindowLayer`` keeps ``W - 1``; the next token
  makes W). MLA layers hold the latent ``kv_lora_rank + qk_rope_head_dim`` values per token
  (what transformers v5 and serving engines cache). This generalises ``M_infer(T)`` (eq. 4).
- MLA FLOPs count the non-absorbed form: the new token's K/V up-projection plus attention over
  T keys of ``qk_nope + qk_rope`` (scores) and ``v_head_dim`` (values) per head. transformers'
  eager code re-expands the whole cached latent at every decode step (an extra
  ``2·kv_lora_rank·n_h·(qk_nope + v)`` per cached token and layer), which is not counted.
- Memory = weights (all parameters at the weight dtype) + KV cache (at the KV dtype) × batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..devices import dtype_bits
from ..errors import ConfigError
from .config_reader import ModelShape
from .layer_plan import cache_layers
from .serving import (
    Parallelism,
    activation_dtype,
    check_layer,
    kv_dtype,
    layer_kv_bytes_per_token,
    layer_state_bytes,
)


def values_to_bytes(values: int, dtype: str) -> int:
    """Bytes of ``values`` values at ``dtype`` (rounded up for sub-byte dtypes)."""
    return -(-values * dtype_bits(dtype) // 8)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts. ``embedding`` is the input embedding (plus a learned position table)
    plus an untied output head; ``active`` counts what one token uses (routed experts: top-k)."""

    total: int
    embedding: int
    non_embedding: int
    active: int

    def to_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "embedding": self.embedding,
            "non_embedding": self.non_embedding,
            "active": self.active,
        }


# ---------------------------------------------------------------- parameters


def attention_matmul_params(s: ModelShape) -> int:
    """Weights of one layer's attention projections (no biases or norms).

    Standard: ``2·d·d_h·(n_h + n_kv)`` (cost-model.md, decoupled head). MLA: the low-rank
    q, kv down/up projections and o.
    """
    d = s.hidden
    if s.mla is not None:
        m = s.mla
        q = (
            d * m.q_lora_rank + m.q_lora_rank * s.heads * m.qk_head_dim
            if m.q_lora_rank
            else (d * s.heads * m.qk_head_dim)
        )
        kv = d * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv += m.kv_lora_rank * s.heads * (m.qk_nope_head_dim + m.v_head_dim)
        return q + kv + s.heads * m.v_head_dim * d + _indexer_matmul_params(s)
    return 2 * d * s.head_dim * (s.heads + s.kv_heads)


def _indexer_matmul_params(s: ModelShape) -> int:
    """DeepSeek sparse attention's lightning indexer: ``wq_b`` (q latent -> index heads),
    ``wk`` (d -> one index key) and ``weights_proj`` (d -> one weight per index head)."""
    m = s.mla
    if m is None or not m.index_head_dim:
        return 0
    q_in = m.q_lora_rank or s.hidden
    return q_in * m.index_heads * m.index_head_dim + s.hidden * (m.index_head_dim + m.index_heads)


def attention_params(s: ModelShape) -> int:
    """All parameters of one layer's attention block: projections, biases, q/k norms."""
    total = attention_matmul_params(s)
    if s.mla is not None:
        m = s.mla
        total += m.kv_lora_rank + (m.q_lora_rank or 0)  # RMSNorms on the latents
        total += 2 * m.index_head_dim  # the indexer's key LayerNorm (weight and bias)
        if s.qkv_bias:
            total += (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim
        if s.o_bias:
            total += s.hidden
        return total
    if s.qkv_bias:
        total += s.head_dim * (s.heads + 2 * s.kv_heads)
    if s.o_bias:
        total += s.hidden
    if s.qk_norm == "head":
        total += 2 * s.head_dim
    elif s.qk_norm == "layer":
        total += s.head_dim * (s.heads + s.kv_heads)
    if s.attention_sinks:
        total += s.heads  # one learned sink logit per head (gpt-oss)
    return total


def mlp_matmul_params(s: ModelShape, ffn: int) -> int:
    """Weights of one FFN of size ``ffn``: ``3·d·d_ff`` gated (SwiGLU), ``2·d·d_ff`` plain."""
    return (3 if s.gated_ffn else 2) * s.hidden * ffn


def mlp_params(s: ModelShape, ffn: int) -> int:
    """Weights plus biases of one FFN of size ``ffn``."""
    total = mlp_matmul_params(s, ffn)
    if s.mlp_bias:
        total += (2 if s.gated_ffn else 1) * ffn + s.hidden
    return total


def _moe_layer_params(s: ModelShape) -> tuple[int, int]:
    """(all parameters, parameters one token uses) of one MoE FFN layer."""
    assert s.moe is not None
    moe = s.moe
    router = moe.experts * (s.hidden + (1 if moe.router_bias else 0))
    expert = mlp_matmul_params(s, moe.expert_ffn)
    if moe.expert_bias:
        expert += (2 if s.gated_ffn else 1) * moe.expert_ffn + s.hidden
    shared = mlp_params(s, moe.shared_ffn) if moe.shared_ffn else 0
    return router + moe.experts * expert + shared, router + moe.top_k * expert + shared


def norm_params(s: ModelShape) -> int:
    """Parameters of one normalisation layer of width d (weight, plus bias for LayerNorm)."""
    return s.hidden * (2 if s.norm_has_bias else 1)


def embedding_params(s: ModelShape) -> int:
    """Input embedding, learned positions and an untied output head (with its bias)."""
    width = s.embed_dim or s.hidden
    total = s.vocab * width + s.positions * s.hidden
    if not s.tied_embeddings:
        total += s.vocab * width
    if s.lm_head_bias:
        total += s.vocab
    return total


def param_counts(s: ModelShape) -> ParamCounts:
    """Exact parameter counts (equal to summing ``numel()`` over the HF model's parameters)."""
    if s.plan is not None:
        layers = s.plan.layers
        embedding = embedding_params(s)
        total = sum(layer.params for layer in layers) + s.plan.other_params + embedding
        inactive = sum(layer.params - layer.active_params for layer in layers)
        return ParamCounts(total, embedding, total - embedding, total - inactive)
    total = 0
    inactive = 0
    for i in range(s.layers):
        total += attention_params(s) + s.norms_per_layer * norm_params(s)
        if s.moe is not None and s.moe.moe_layers[i]:
            layer_all, layer_active = _moe_layer_params(s)
            total += layer_all
            inactive += layer_all - layer_active
        else:
            total += mlp_params(s, s.ffn)
    total += norm_params(s)  # final norm
    if s.embed_dim:
        total += 2 * s.hidden * s.embed_dim  # opt's project_in / project_out
    embedding = embedding_params(s)
    total += embedding
    return ParamCounts(total, embedding, total - embedding, total - inactive)


def matmul_params_per_token(s: ModelShape) -> int:
    """Weights multiplied by each token's activations: attention and FFN projections (routed
    experts: top-k plus router and shared experts), the output head (also when tied), and opt's
    embedding projections. ``2×`` this is the time-invariant part of decode FLOPs (eq. 3's 2N)."""
    if s.plan is not None:
        return sum(layer.matmul_params for layer in s.plan.layers) + s.vocab * s.hidden
    total = 0
    for i in range(s.layers):
        total += attention_matmul_params(s)
        if s.moe is not None and s.moe.moe_layers[i]:
            moe = s.moe
            total += moe.experts * s.hidden + moe.top_k * mlp_matmul_params(s, moe.expert_ffn)
            total += mlp_matmul_params(s, moe.shared_ffn)
        else:
            total += mlp_matmul_params(s, s.ffn)
    total += s.vocab * (s.embed_dim or s.hidden)
    if s.embed_dim:
        total += 2 * s.hidden * s.embed_dim
    return total


# ---------------------------------------------------------------- KV cache and state


def kv_values_per_token_per_layer(s: ModelShape) -> int:
    """Values one token adds to one (uniform) layer's cache: ``2·n_kv·d_h`` (K and V, eq. 4's
    term per layer), or for MLA the latent ``kv_lora_rank + qk_rope_head_dim`` (plus the
    indexer key of DeepSeek sparse attention)."""
    return cache_layers(s)[0].kv_values if s.layers else 0


def cached_tokens(window: int | None, context: int) -> int:
    """Tokens a layer's cache holds after ``context`` tokens (``min(T, W - 1)`` if sliding)."""
    return context if window is None else min(context, window - 1)


def kv_cache_values(s: ModelShape, context: int) -> int:
    """Cached K/V values for one sequence of ``context`` tokens, windows applied (no state)."""
    return sum(layer.kv_values * layer.cached_tokens(context) for layer in cache_layers(s))


def _kv_bytes_one_sequence(s: ModelShape, context: int | None, dtype: str, tp: int = 1) -> int:
    fmt = kv_dtype(dtype)
    total = 0
    for layer in cache_layers(s):
        tokens = 1 if context is None else layer.cached_tokens(context)
        if context is None and layer.kind in ("state", "none"):
            tokens = 0
        total += tokens * layer_kv_bytes_per_token(layer, fmt, tp)
    return total


def kv_cache_bytes_per_token(s: ModelShape, dtype: str = "bf16") -> int:
    """KV-cache bytes one token adds with no sliding-window cap (all attention layers; the
    slope of the cache, fixed-size states excluded)."""
    return _kv_bytes_one_sequence(s, None, dtype)


def state_bytes(s: ModelShape, dtype: str = "bf16", *, batch: int = 1) -> int:
    """Fixed-size cache state of ``batch`` sequences (gated-DeltaNet / Mamba2 conv windows at
    the activation dtype, recurrent states in float32): the part of the cache that does not
    grow with context. 0 for pure attention models."""
    act = activation_dtype(dtype)
    return batch * sum(layer_state_bytes(layer, act) for layer in cache_layers(s))


def kv_bytes(s: ModelShape, context: int, dtype: str = "bf16", *, batch: int = 1) -> int:
    """The K/V part of the cache after ``context`` tokens (grows with context)."""
    return batch * _kv_bytes_one_sequence(s, context, dtype)


def kv_cache_bytes(s: ModelShape, context: int, dtype: str = "bf16", *, batch: int = 1) -> int:
    """Whole cache of ``batch`` sequences of ``context`` tokens: K/V (sliding windows applied)
    plus fixed-size states, i.e. every tensor transformers' cache holds."""
    return kv_bytes(s, context, dtype, batch=batch) + state_bytes(s, dtype, batch=batch)


def per_device_cache_bytes(
    s: ModelShape, context: int, dtype: str = "bf16", *, batch: int = 1, tp: int = 1, dcp: int = 1
) -> int:
    """Cache bytes on one device at tensor parallel ``tp`` and decode context parallel ``dcp``
    (vLLM: KV heads replicated ``tp / n_kv`` times when ``tp > n_kv``, cached tokens split
    ``dcp`` ways, states split over their heads; see :mod:`gqa_retrofit.cost.serving`).

    Raises:
        ConfigError: ``tp``/``dcp`` not valid for this model's heads.
    """
    par = Parallelism(tp, dcp)
    layers = cache_layers(s)
    for i, layer in enumerate(layers):
        check_layer(layer, par, i)
    fmt, act = kv_dtype(dtype), activation_dtype(dtype)
    total = 0
    for layer in layers:
        tokens = -(-layer.cached_tokens(context) // dcp)
        total += tokens * layer_kv_bytes_per_token(layer, fmt, tp)
        total += layer_state_bytes(layer, act, tp)
    return batch * total


# ---------------------------------------------------------------- FLOPs


def attention_flops_per_key(s: ModelShape) -> int:
    """FLOPs of one query token against one key in one layer: ``2·n_h·d_qk`` (scores) +
    ``2·n_h·d_v`` (weighted values) = ``4·n_h·d_h`` for standard attention (eq. 3)."""
    if s.mla is not None:
        return 2 * s.heads * (s.mla.qk_head_dim + s.mla.v_head_dim)
    return 4 * s.heads * s.head_dim


def attended_keys(window: int | None, position: int) -> int:
    """Keys the token at ``position`` (1-based) attends to: ``min(T, W)`` in a sliding layer."""
    return position if window is None else min(position, window)


def decode_flops(s: ModelShape, position: int) -> int:
    """FLOPs to decode one token at ``position`` (T keys in context, itself included):
    ``2·N_matmul + Σ_layers 4·n_h·d_h·min(T, W)`` (generalised eq. 3)."""
    attention = sum(
        layer.attention_flops_per_key * layer.attended_keys(position) for layer in cache_layers(s)
    )
    return 2 * matmul_params_per_token(s) + attention


def _causal_keys_sum(window: int | None, context: int) -> int:
    """``Σ_{t=1..T} min(t, W)``: keys attended over a causal prefill of T tokens."""
    if window is None or context <= window:
        return context * (context + 1) // 2
    return window * (window + 1) // 2 + (context - window) * window


def prefill_flops(s: ModelShape, context: int, *, causal: bool = True) -> int:
    """FLOPs to prefill ``context`` tokens at once.

    Causal (default): the sum of per-position decode costs,
    ``T·2·N_matmul + Σ_layers 4·n_h·d_h·Σ_t min(t, W)``. ``causal=False``: the full T×T score
    square in every attention layer (what eager kernels compute, masks included).
    """
    attention = 0
    for layer in cache_layers(s):
        keys = layer.causal_keys_sum(context) if causal else context * context
        if layer.kind in ("state", "none"):
            keys = 0
        attention += layer.attention_flops_per_key * keys
    return context * 2 * matmul_params_per_token(s) + attention


def training_flops_per_token(s: ModelShape, context: int) -> float:
    """Training FLOPs per token on sequences of ``context`` tokens: forward + backward = 3×
    the causal forward (eqs. 10–11: ``6·(N + 2·L·T̄·d_h·n_h)``, T̄ = T/2)."""
    return 3 * prefill_flops(s, context) / context


def memory_bytes(
    s: ModelShape,
    context: int,
    *,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    batch: int = 1,
) -> int:
    """Inference memory: all weights at ``dtype`` + the KV cache at ``kv_dtype`` (default
    ``dtype``) for ``batch`` sequences of ``context`` tokens (generalised eq. 4, in bytes).
    Activations and framework overheads are not included."""
    weights = values_to_bytes(param_counts(s).total, dtype)
    cache = kv_cache_bytes(s, context, kv_dtype or dtype, batch=batch)
    return weights + cache


def check_context(context: int) -> None:
    """Raises:
    ConfigError: ``context`` is not a positive integer."""
    if not isinstance(context, int) or isinstance(context, bool) or context <= 0:
        raise ConfigError(f"context length must be a positive integer, got {context!r}")
