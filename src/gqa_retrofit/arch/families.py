"""The family table: one :class:`FamilySpec` per supported ``model_type``.

Facts come from the transformers v5 modeling code (see ``shared/notes/hf-facts.md``). Families
not listed here are estimated through the generic field names only when a meta-device
instantiation confirms the result.
"""

from __future__ import annotations

from dataclasses import replace

from .spec import CustomType, FamilySpec, MoESpec

_DEEPSEEK_V3 = FamilySpec(
    "deepseek_v3",
    decoupled="none",
    mla=True,
    moe=MoESpec(
        ("n_routed_experts", "num_local_experts"),
        expert_ffn_key="moe_intermediate_size",
        shared_experts_key="n_shared_experts",
        first_dense_key="first_k_dense_replace",
        mlp_types_key="mlp_layer_types",
    ),
    architectures=("DeepseekV3ForCausalLM",),
    notes="MLA: the cache holds kv_lora_rank + qk_rope_head_dim values per token and layer",
)
_QWEN_MOE = MoESpec(
    ("num_experts", "num_local_experts"),
    expert_ffn_key="moe_intermediate_size",
    sparse_step_key="decoder_sparse_step",
    dense_layers_key="mlp_only_layers",
)

FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in [
        # Llama validates hidden % heads even with head_dim; mistral has the same weight layout.
        FamilySpec(
            "llama",
            decoupled="fallback",
            decoupled_type="mistral",
            # mistral has no attention/MLP biases and a sliding window by default
            fallback_requires={"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1},
            fallback_set={"sliding_window": None},
        ),
        FamilySpec("mistral", sliding="all"),
        FamilySpec("mixtral", sliding="all", moe=MoESpec(("num_local_experts",))),
        FamilySpec("ministral", sliding="all"),
        FamilySpec(
            "qwen2",
            qkv_bias_key=None,
            qkv_bias_default=True,
            o_bias_key=None,
            sliding="max_window_layers",
            sliding_gate_key="use_sliding_window",
        ),
        FamilySpec(
            "qwen3",
            qk_norm=True,
            sliding="max_window_layers",
            sliding_gate_key="use_sliding_window",
        ),
        FamilySpec(
            "qwen3_moe",
            qk_norm=True,
            sliding="all",
            sliding_gate_key="use_sliding_window",
            moe=_QWEN_MOE,
        ),
        FamilySpec("gemma", tie_default=True),
        FamilySpec(
            "gemma2",
            tie_default=True,
            decoupled="fallback",
            decoupled_type="gemma2_gqa",
            notes="needs attn_implementation='eager' in transformers 5.23",
            norms_per_layer=4,
            sliding="pattern",
            sliding_pattern=2,
        ),
        FamilySpec(
            "gemma3_text",
            tie_default=True,
            qk_norm=True,
            decoupled="fallback",
            decoupled_type="gemma3_text_gqa",
            norms_per_layer=4,
            sliding="pattern",
            sliding_pattern=6,
        ),
        FamilySpec(
            "phi3",
            qkv_layout="fused",
            qkv_name="qkv_proj",
            qkv_bias_key=None,
            o_bias_key=None,
            sliding="all",
        ),
        FamilySpec(
            "starcoder2",
            gated_mlp=False,
            norm_has_bias=True,
            qkv_bias_key="use_bias",
            o_bias_key="use_bias",
            mlp_bias_key="use_bias",
            qkv_bias_default=True,
            o_bias_default=True,
            mlp_bias_default=True,
            sliding="all",
            tie_default=True,
        ),
        FamilySpec("olmo2", qk_norm=True, qk_norm_per_layer=True),
        FamilySpec("granite"),
        FamilySpec("cohere", norm_has_bias=False, tie_default=True, norms_per_layer=1),
        # NoPE layers (no_rope_layers) change neither parameters nor the cache
        FamilySpec("smollm3", tie_default=True),
        # --- families without GQA / decoupled heads in transformers: custom types ---
        FamilySpec(
            "gpt2",
            layers_keys=("n_layer",),
            hidden_keys=("n_embd",),
            heads_keys=("n_head",),
            intermediate_keys=("n_inner",),
            ffn_default_multiple=4,
            qkv_layout="conv1d",
            attn_path="transformer.h.{i}.attn",
            qkv_name="c_attn",
            o_name="c_proj",
            qkv_bias_key=None,
            qkv_bias_default=True,
            o_bias_key=None,
            o_bias_default=True,
            gated_mlp=False,
            mlp_bias_key=None,
            mlp_bias_default=True,
            honours_kv_heads=False,
            honours_head_dim=False,
            rope=False,
            norm_has_bias=True,
            tie_default=True,
            learned_positions=True,
            decoupled="custom",
            decoupled_type="gpt2_gqa",
        ),
        FamilySpec(
            "gpt_neox",
            qkv_layout="interleaved",
            attn_path="gpt_neox.layers.{i}.attention",
            qkv_name="query_key_value",
            o_name="dense",
            qkv_bias_key="attention_bias",
            qkv_bias_default=True,
            o_bias_key="attention_bias",
            o_bias_default=True,
            gated_mlp=False,
            mlp_bias_key=None,
            mlp_bias_default=True,
            honours_kv_heads=False,
            honours_head_dim=False,
            norm_has_bias=True,
            decoupled="custom",
            decoupled_type="gpt_neox_gqa",
        ),
        FamilySpec(
            "opt",
            attn_path="model.decoder.layers.{i}.self_attn",
            o_name="out_proj",
            qkv_bias_key="enable_bias",
            qkv_bias_default=True,
            o_bias_key="enable_bias",
            o_bias_default=True,
            gated_mlp=False,
            mlp_bias_key="enable_bias",
            mlp_bias_default=True,
            layers_keys=("num_hidden_layers",),
            intermediate_keys=("ffn_dim",),
            honours_kv_heads=False,
            honours_head_dim=False,
            rope=False,
            norm_has_bias=True,
            tie_default=True,
            learned_positions=True,
            decoupled="custom",
            decoupled_type="opt_gqa",
            positions_keys=("max_position_embeddings",),
            positions_offset=2,
        ),
        FamilySpec(
            "falcon",
            qkv_layout="interleaved",
            attn_path="transformer.h.{i}.self_attention",
            qkv_name="query_key_value",
            o_name="dense",
            qkv_bias_key="bias",
            o_bias_key="bias",
            gated_mlp=False,
            mlp_bias_key="bias",
            kv_heads_keys=("num_kv_heads",),
            intermediate_keys=("ffn_hidden_size",),
            ffn_default_multiple=4,
            tie_default=True,
            norm_has_bias=True,
            decoupled="custom",
            decoupled_type="falcon_gqa",
            gqa_key="new_decoder_architecture",
            mqa_key="multi_query",
            notes="new_decoder_architecture caches all heads; multi_query caches one",
        ),
        # --- estimation only (no conversion support yet) ---
        _DEEPSEEK_V3,
        replace(
            _DEEPSEEK_V3,
            model_type="deepseek_v32",
            mla_indexer=True,
            architectures=("DeepseekV32ForCausalLM",),
            notes="MLA + DeepSeek sparse attention: the cache also holds one index_head_dim "
            "indexer key per token and layer",
        ),
        replace(
            _DEEPSEEK_V3,
            model_type="glm_moe_dsa",
            mla_indexer=True,
            architectures=("GlmMoeDsaForCausalLM",),
            notes="GLM-5: MLA + DeepSeek sparse attention (indexer key cached per token)",
        ),
        FamilySpec(
            "gpt_oss",
            decoupled="none",
            qkv_bias_default=True,
            o_bias_default=True,
            sliding="pattern",
            sliding_pattern=2,
            attention_sinks=True,
            moe=MoESpec(("num_local_experts",), router_bias=True, expert_bias=True),
            architectures=("GptOssForCausalLM",),
            config_defaults={"head_dim": 64, "sliding_window": 128},
            notes="alternating sliding (128) / full layers, attention sinks, biased MoE",
        ),
        FamilySpec(
            "minimax_m2",
            decoupled="none",
            qk_norm=True,
            qk_norm_per_layer=True,
            moe=MoESpec(("num_local_experts",)),
            architectures=("MiniMaxM2ForCausalLM",),
            config_defaults={"head_dim": 128},
        ),
        FamilySpec(
            "llama4_text",
            decoupled="none",
            intermediate_keys=("intermediate_size_mlp",),
            sliding="no_rope_chunked",
            moe=MoESpec(
                ("num_local_experts",),
                expert_ffn_key="intermediate_size",
                sparse_step_key="interleave_moe_layer_step",
                moe_layers_key="moe_layers",
                shared_ffn_key="intermediate_size",
            ),
            architectures=("Llama4ForCausalLM",),
            config_defaults={
                "head_dim": 128,
                "intermediate_size": 8192,
                "intermediate_size_mlp": 16384,
                "attention_chunk_size": 8192,
            },
            notes="RoPE layers use chunked attention (attention_chunk_size), NoPE layers full",
        ),
        FamilySpec("qwen3_vl_text", qk_norm=True, decoupled="none"),
        FamilySpec(
            "qwen3_vl_moe_text",
            qk_norm=True,
            decoupled="none",
            tie_default=True,
            moe=_QWEN_MOE,
        ),
        FamilySpec(
            "qwen3_next",
            decoupled="none",
            plan="gated_deltanet",
            architectures=("Qwen3NextForCausalLM",),
            config_defaults={"head_dim": 256},
            notes="gated DeltaNet layers hold a fixed-size state (conv window + float32 "
            "recurrent state); only full-attention layers grow with context",
        ),
        FamilySpec(
            "qwen3_5_text",
            decoupled="none",
            plan="gated_deltanet",
            architectures=("Qwen3_5ForCausalLM",),
            config_defaults={"head_dim": 256},
            notes="gated DeltaNet hybrid (as qwen3_next), dense MLP",
        ),
        FamilySpec(
            "qwen3_5_moe_text",
            decoupled="none",
            plan="gated_deltanet",
            architectures=("Qwen3_5MoeForCausalLM",),
            config_defaults={"head_dim": 256},
            notes="gated DeltaNet hybrid (as qwen3_next), MoE MLP",
        ),
        FamilySpec(
            "nemotron_h",
            decoupled="none",
            gated_mlp=False,
            plan="nemotron_h",
            architectures=("NemotronHForCausalLM",),
            config_defaults={"head_dim": 128},
            notes="Mamba2 layers hold a fixed-size state (conv window + float32 SSM state)",
        ),
        FamilySpec(
            "gemma4_text",
            decoupled="none",
            tie_default=True,
            plan="gemma4",
            architectures=("Gemma4ForCausalLM",),
            config_defaults={"head_dim": 256, "global_head_dim": 512, "sliding_window": 512},
            notes="sliding and full layers differ in head size and KV heads; KV-shared layers "
            "cache nothing",
        ),
        FamilySpec(
            "granitemoehybrid",
            decoupled="none",
            plan="granitemoehybrid",
            architectures=("GraniteMoeHybridForCausalLM",),
            notes="Granite-4.0: Mamba2 layers (fixed-size state) and attention layers",
        ),
        FamilySpec(
            "falcon_h1",
            decoupled="none",
            plan="falcon_h1",
            architectures=("FalconH1ForCausalLM",),
            notes="attention and Mamba2 in parallel in every layer: KV grows, state is fixed",
        ),
        FamilySpec(
            "jamba",
            decoupled="none",
            plan="jamba",
            architectures=("JambaForCausalLM",),
            notes="Mamba (v1) layers with a fixed-size state, attention every attn_layer_period",
        ),
        FamilySpec(
            "mimo_v2_flash",
            decoupled="none",
            plan="mimo_v2_flash",
            architectures=("MiMoV2FlashForCausalLM",),
            config_defaults={"head_dim": 192, "v_head_dim": 128, "sliding_window": 129},
            notes="sliding layers have twice the KV heads of full layers, plus sinks",
        ),
    ]
}

# Hub model types transformers cannot build but maps to a supported type itself
# (transformers' Kimi-K2.5 config reads a "kimi_k2" text config as deepseek_v3).
TYPE_ALIASES: dict[str, str] = {"kimi_k2": "deepseek_v3"}

# HF class name in ``architectures`` -> model type, for model types without an entry.
ARCHITECTURE_TYPES: dict[str, str] = {
    name: spec.model_type for spec in FAMILIES.values() for name in spec.architectures
}

# The custom decoupled-head model types (gqa_retrofit.patching.models), one row each.
CUSTOM_TYPES: dict[str, CustomType] = {
    t.model_type: t
    for t in [
        CustomType("gpt2", "GPT2GQA", own_attention=True),
        CustomType("gpt_neox", "GPTNeoXGQA", own_attention=True),
        CustomType("opt", "OPTGQA", own_attention=True),
        CustomType("falcon", "FalconGQA", own_attention=True),
        CustomType("gemma2", "Gemma2GQA", own_attention=False),
        CustomType("gemma3_text", "Gemma3TextGQA", own_attention=False),
    ]
}

for _custom in CUSTOM_TYPES.values():
    _base = _custom.base_type
    # An own attention keeps the base family's tensor names and layout (interleaved layouts
    # generalise to KV groups) and honours n_kv and d_h; a config-only type changes nothing else.
    _own = dict(
        honours_kv_heads=True,
        honours_head_dim=True,
        kv_heads_keys=("num_key_value_heads", "num_kv_heads"),
        gqa_key=None,
        mqa_key=None,
    )
    FAMILIES[_custom.model_type] = replace(
        FAMILIES[_base],
        model_type=_custom.model_type,
        decoupled="custom",
        decoupled_type=_custom.model_type,
        notes=f"gqa_retrofit custom type of {_base}: import gqa_retrofit or trust_remote_code"
        if _custom.own_attention
        else f"{_base} without the hidden % heads config check (gqa_retrofit custom type)",
        **(_own if _custom.own_attention else {}),  # type: ignore[arg-type]
    )
