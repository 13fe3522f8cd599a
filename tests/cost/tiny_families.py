"""Tiny transformers configs of every family the estimator supports, including variants that
exercise its special cases (sliding windows, MoE, MLA, falcon's layouts, MQA)."""

from __future__ import annotations

import functools
from typing import Any

from tiny_models import TINY_FAMILIES, tiny_config

_BASE: dict[str, Any] = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# name -> (model_type, overrides); names not in TINY_FAMILIES or with a suffix are variants.
EXTRA: dict[str, tuple[str, dict[str, Any]]] = {
    "qwen3_moe": (
        "qwen3_moe",
        dict(
            head_dim=16,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            decoder_sparse_step=1,
            mlp_only_layers=[0],
        ),
    ),
    "deepseek_v3": (
        "deepseek_v3",
        dict(
            num_hidden_layers=3,
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            first_k_dense_replace=1,
            n_shared_experts=1,
            kv_lora_rank=32,
            q_lora_rank=48,
            qk_rope_head_dim=8,
            qk_nope_head_dim=16,
            v_head_dim=16,
            n_group=1,
            topk_group=1,
            num_key_value_heads=4,
        ),
    ),
    "gemma": ("gemma", dict(head_dim=16)),
    "starcoder2": ("starcoder2", dict(sliding_window=8)),
    "olmo2": ("olmo2", {}),
    "granite": ("granite", {}),
    "cohere": ("cohere", {}),
    "smollm3": ("smollm3", {}),
    "ministral": ("ministral", dict(head_dim=16, sliding_window=8)),
    "mistral-sliding": ("mistral", dict(sliding_window=8)),
    "qwen2-sliding": (
        "qwen2",
        dict(use_sliding_window=True, sliding_window=8, max_window_layers=1),
    ),
    "phi3-sliding": ("phi3", dict(sliding_window=8)),
    "falcon-mqa": ("falcon", dict(new_decoder_architecture=False, multi_query=True)),
    "llama-mqa-decoupled": (
        "mistral",
        dict(num_key_value_heads=1, head_dim=24, num_attention_heads=6),
    ),
}

ALL_TINY = sorted([*TINY_FAMILIES, *EXTRA])


def tiny_estimator_config(name: str, **overrides: Any) -> Any:
    """A tiny transformers config for ``name`` (a family of tiny_models or a key of EXTRA)."""
    if name in TINY_FAMILIES:
        return tiny_config(name, **overrides)
    from transformers import AutoConfig

    model_type, extra = EXTRA[name]
    return AutoConfig.for_model(model_type, **{**_BASE, **extra, **overrides})


@functools.cache
def tiny_estimator_model(name: str, *, seed: int = 0, eager: bool = True) -> Any:
    """A tiny random causal LM for ``name`` (fp32, eval mode, eager attention); cached, so
    callers must not modify it."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_estimator_config(name)
    kwargs = {"attn_implementation": "eager", "experts_implementation": "eager"} if eager else {}
    return AutoModelForCausalLM.from_config(config, **kwargs).eval()
