"""Shrunk configs of the 2025-2026 families: the per-layer geometry of the real models (layer
kinds, head layouts, windows, MoE placement) with small widths and few layers, so a forward
pass takes milliseconds. ``WINDOW`` is small so two lengths straddle it."""

from __future__ import annotations

from typing import Any

from tests.cost.tiny_families import _BASE as TINY_BASE
from tests.cost.tiny_families import EXTRA

WINDOW = 8  # sliding window / attention chunk of the shrunk configs
SHORT, LONG = 5, 13  # two forward lengths: inside and beyond the window

# the tiny estimator configs' base and MLA variant (tiny_families), with every layer count and
# head size set per family below
_BASE: dict[str, Any] = {
    **{k: v for k, v in TINY_BASE.items() if k != "num_hidden_layers"},
    "head_dim": 16,
}
_MLA = {k: v for k, v in EXTRA["deepseek_v3"][1].items() if k != "num_hidden_layers"} | {
    "num_attention_heads": 4
}
_DELTANET = dict(
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=8,
    linear_value_head_dim=12,
    linear_conv_kernel_dim=4,
    layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    num_hidden_layers=4,
)
_QWEN_MOE = dict(
    num_experts=4,
    num_experts_per_tok=2,
    moe_intermediate_size=32,
    shared_expert_intermediate_size=48,
)

# name -> (model_type, overrides of _BASE)
SHRUNK: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt_oss": (
        "gpt_oss",
        dict(
            num_hidden_layers=4, num_local_experts=4, num_experts_per_tok=2, sliding_window=WINDOW
        ),
    ),
    "minimax_m2": (
        "minimax_m2",
        dict(num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2, use_qk_norm=True),
    ),
    "llama4_text": (
        "llama4_text",
        dict(
            num_hidden_layers=4,
            num_local_experts=4,
            num_experts_per_tok=1,
            intermediate_size_mlp=80,
            interleave_moe_layer_step=2,
            attention_chunk_size=WINDOW,
        ),
    ),
    "deepseek_v32": (
        "deepseek_v32",
        dict(num_hidden_layers=3, index_n_heads=2, index_head_dim=16, index_topk=4, **_MLA),
    ),
    "glm_moe_dsa": (
        "glm_moe_dsa",
        dict(num_hidden_layers=3, index_n_heads=2, index_head_dim=16, index_topk=4, **_MLA),
    ),
    "qwen3_next": ("qwen3_next", dict(**_DELTANET, **_QWEN_MOE, mlp_only_layers=[1])),
    "qwen3_5_text": ("qwen3_5_text", dict(_DELTANET)),
    "qwen3_5_moe_text": ("qwen3_5_moe_text", dict(**_DELTANET, **_QWEN_MOE)),
    "nemotron_h": (
        "nemotron_h",
        dict(
            hybrid_override_pattern="M-M*E",
            num_hidden_layers=5,
            ssm_state_size=8,
            mamba_num_heads=4,
            mamba_head_dim=8,
            n_groups=2,
            conv_kernel=4,
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            moe_shared_expert_intermediate_size=40,
        ),
    ),
    "mimo_v2_flash": (
        "mimo_v2_flash",
        dict(
            num_hidden_layers=3,
            head_dim=24,
            v_head_dim=16,
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            sliding_window=WINDOW,
            layer_types=["full_attention", "sliding_attention", "sliding_attention"],
            mlp_layer_types=["dense", "sparse", "sparse"],
        ),
    ),
    "qwen3_vl": ("qwen3_vl", dict(num_hidden_layers=2)),
    "qwen3_vl_moe": (
        "qwen3_vl_moe",
        dict(num_hidden_layers=2, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32),
    ),
    "gemma4_text": (
        "gemma4_text",
        dict(
            num_hidden_layers=6,
            global_head_dim=32,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention"] * 3,
            hidden_size_per_layer_input=8,
            vocab_size_per_layer_input=128,
            num_kv_shared_layers=2,
            use_double_wide_mlp=True,
        ),
    ),
    "gemma4_text-moe": (
        "gemma4_text",
        dict(
            num_hidden_layers=2,
            global_head_dim=32,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention"],
            hidden_size_per_layer_input=0,
            enable_moe_block=True,
            num_experts=4,
            top_k_experts=2,
            moe_intermediate_size=32,
        ),
    ),
    "granitemoehybrid": (
        "granitemoehybrid",
        dict(
            num_hidden_layers=3,
            layer_types=["mamba", "attention", "mamba"],
            mamba_n_heads=4,
            mamba_d_head=32,
            mamba_d_state=8,
            mamba_n_groups=2,
            mamba_d_conv=4,
            num_local_experts=4,
            num_experts_per_tok=2,
            shared_intermediate_size=40,
        ),
    ),
    "falcon_h1": (
        "falcon_h1",
        dict(
            num_hidden_layers=2,
            mamba_n_heads=4,
            mamba_d_head=16,
            mamba_d_state=8,
            mamba_n_groups=2,
            mamba_d_conv=4,
            mamba_d_ssm=64,
            mamba_rms_norm=True,
        ),
    ),
    "jamba": (
        "jamba",
        dict(
            num_hidden_layers=4,
            attn_layer_period=2,
            attn_layer_offset=1,
            expert_layer_period=2,
            expert_layer_offset=1,
            num_experts=4,
            num_experts_per_tok=2,
            mamba_d_state=8,
            mamba_d_conv=4,
            mamba_expand=2,
            mamba_dt_rank=8,
            use_mamba_kernels=False,
        ),
    ),
    "smollm3": ("smollm3", dict(num_hidden_layers=4, no_rope_layer_interval=2)),
}


# multimodal wrappers: the overrides describe the text decoder (``text_config``); the vision
# tower is minimal and not costed (the estimator reads the text decoder)
WRAPPERS: dict[str, dict[str, Any]] = {
    "qwen3_vl": dict(
        depth=1,
        hidden_size=32,
        num_heads=2,
        out_hidden_size=64,
        intermediate_size=32,
        deepstack_visual_indexes=[],
    ),
}
WRAPPERS["qwen3_vl_moe"] = WRAPPERS["qwen3_vl"]
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}


def shrunk_config(name: str) -> dict[str, Any]:
    """The raw config dict (as config.json would hold it) of shrunk family ``name``."""
    model_type, overrides = SHRUNK[name]
    if name in WRAPPERS:
        text = {**_BASE, **overrides, "rope_parameters": _MROPE}
        return {
            "model_type": model_type,
            "text_config": text,
            "vision_config": WRAPPERS[name],
            "tie_word_embeddings": False,
        }
    return {**_BASE, **overrides, "model_type": model_type}
