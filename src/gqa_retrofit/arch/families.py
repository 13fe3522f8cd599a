"""The family table: one :class:`FamilySpec` per supported ``model_type``.

Facts come from the transformers v5 modeling code (see ``shared/notes/hf-facts.md``). Families
not listed here are estimated through the generic field names only when a meta-device
instantiation confirms the result.
"""

from __future__ import annotations

from dataclasses import replace

from .spec import FamilySpec

FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in [
        # Llama validates hidden % heads even with head_dim; mistral has the same weight layout.
        FamilySpec("llama", decoupled="fallback", decoupled_type="mistral"),
        FamilySpec("mistral"),
        FamilySpec("mixtral", extra={"moe": True}),
        FamilySpec("ministral"),
        FamilySpec("qwen2", qkv_bias_key=None, qkv_bias_default=True, o_bias_key=None),
        FamilySpec("qwen3", qk_norm=True),
        FamilySpec("qwen3_moe", qk_norm=True, extra={"moe": True}),
        FamilySpec("gemma", tie_default=True),
        FamilySpec(
            "gemma2",
            tie_default=True,
            decoupled="fallback",
            decoupled_type=None,
            notes="needs attn_implementation='eager' in transformers 5.23",
        ),
        FamilySpec(
            "gemma3_text", tie_default=True, qk_norm=True, decoupled="fallback", decoupled_type=None
        ),
        FamilySpec(
            "phi3", qkv_layout="fused", qkv_name="qkv_proj", qkv_bias_key=None, o_bias_key=None
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
        ),
        FamilySpec("olmo2", qk_norm=True),
        FamilySpec("granite"),
        FamilySpec("cohere", norm_has_bias=False, tie_default=True),
        FamilySpec("smollm3"),
        # --- families without GQA / decoupled heads in transformers: custom types ---
        FamilySpec(
            "gpt2",
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
            norm_has_bias=True,
            decoupled="custom",
            decoupled_type="falcon_gqa",
            gqa_key="new_decoder_architecture",
            mqa_key="multi_query",
            notes="new_decoder_architecture caches all heads; multi_query caches one",
        ),
    ]
}

# The custom decoupled-head types of gqa_retrofit.patching keep their base family's tensor
# names and layout (interleaved layouts generalise to KV groups) and honour n_kv and d_h.
for _base in ("gpt2", "gpt_neox", "opt", "falcon"):
    FAMILIES[f"{_base}_gqa"] = replace(
        FAMILIES[_base],
        model_type=f"{_base}_gqa",
        honours_kv_heads=True,
        honours_head_dim=True,
        kv_heads_keys=("num_key_value_heads", "num_kv_heads"),
        gqa_key=None,
        mqa_key=None,
        decoupled="custom",
        decoupled_type=f"{_base}_gqa",
        notes=f"gqa_retrofit custom type of {_base}: import gqa_retrofit or trust_remote_code",
    )
