"""What a model family looks like, as data.

One :class:`FamilySpec` per ``model_type``. The estimator reads the config-side facts (field
names, MLP kind, biases, tying); patching and conversion read the attention layout (projection
names, fused/interleaved QKV, how a decoupled-head variant is expressed). Adding a family that
follows an existing layout is a data entry in :mod:`gqa_retrofit.arch.families`, not new code.

Notation used in comments across the package (as in the paper):
``L`` layers, ``d`` hidden size, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# How q, k and v projections are stored in a layer:
# - "separate":     q_proj [n_h*d_h, d], k_proj/v_proj [n_kv*d_h, d]        (llama, qwen2, ...)
# - "fused":        one Linear [(n_h + 2*n_kv)*d_h, d], rows q | k | v     (phi3 qkv_proj)
# - "interleaved":  one Linear [3*n_h*d_h, d], rows per head (q_i, k_i, v_i) (gpt_neox, falcon MHA)
# - "conv1d":       gpt2 Conv1D c_attn, weight [d, 3*d] (transposed), columns q | k | v
QKVLayout = Literal["separate", "fused", "interleaved", "conv1d"]

# How a decoupled-head GQA variant of this family is expressed:
# - "native":   the family's own config/model already supports n_h, n_kv, d_h freely
# - "fallback": native, but the config validates hidden % n_h == 0; an equivalent native type
#               with the same weight layout (``decoupled_type``) is used when that fails
# - "custom":   a model class from gqa_retrofit.patching, registered as ``decoupled_type``
# - "none":     not supported for patching/conversion (estimation only)
DecoupledSupport = Literal["native", "fallback", "custom", "none"]

# Which layers use a sliding-window KV cache when the config does not list ``layer_types``:
# - "none":              never (the family ignores ``sliding_window``)
# - "all":               every layer, when ``sliding_window`` is set (mistral, mixtral, phi3)
# - "max_window_layers": layers ``i >= max_window_layers`` (qwen2, qwen3)
# - "pattern":           all but every ``sliding_window_pattern``-th layer (gemma2: 2, gemma3: 6)
# - "no_rope_chunked":   llama4: layers with RoPE (``no_rope_layers[i] == 1``, default every
#                        layer but each ``no_rope_layer_interval``-th) use chunked attention
#                        of ``attention_chunk_size`` tokens
# ``sliding_gate_key`` (e.g. ``use_sliding_window``) must be true for any window to apply.
SlidingRule = Literal["none", "all", "max_window_layers", "pattern", "no_rope_chunked"]


@dataclass(frozen=True)
class MoESpec:
    """Config keys of a mixture-of-experts family (estimator only)."""

    experts_keys: tuple[str, ...]  # number of routed experts (first present wins)
    top_k_key: str = "num_experts_per_tok"
    expert_ffn_key: str = "intermediate_size"  # FFN size of one routed expert
    shared_experts_key: str | None = None  # shared experts, each of the expert FFN size
    first_dense_key: str | None = None  # the first k layers are dense (DeepSeek)
    sparse_step_key: str | None = None  # every step-th layer is MoE (Qwen-MoE)
    dense_layers_key: str | None = None  # explicit list of dense layer indices (Qwen-MoE)
    moe_layers_key: str | None = None  # explicit list of MoE layer indices (llama4)
    mlp_types_key: str | None = None  # per-layer "dense"/"sparse" list (DeepSeek-V3.2, GLM-5)
    shared_ffn_key: str | None = None  # FFN size of the (single) shared expert, if any
    router_bias: bool = False  # the router Linear has a bias (gpt-oss)
    expert_bias: bool = False  # expert projections have biases (gpt-oss)


@dataclass(frozen=True)
class CustomType:
    """One decoupled-head custom model type (``<base>_gqa``) of :mod:`gqa_retrofit.patching`.

    ``own_attention`` True: the type has its own attention module (grouped KV heads in the
    base family's tensor layout); False: the native model, only the config's ``hidden % heads``
    check dropped. Its classes live in ``gqa_retrofit/patching/models/`` as
    ``configuration_<model_type>.py`` (``<class_prefix>Config``) and ``modeling_<model_type>.py``
    (``<class_prefix>ForCausalLM``).
    """

    base_type: str
    class_prefix: str
    own_attention: bool

    @property
    def model_type(self) -> str:
        return f"{self.base_type}_gqa"

    @property
    def config_class(self) -> str:
        return f"{self.class_prefix}Config"

    @property
    def model_class(self) -> str:
        return f"{self.class_prefix}ForCausalLM"


@dataclass(frozen=True)
class FamilySpec:
    """Facts about one ``model_type`` that the estimator, patcher and converter share."""

    model_type: str
    # --- config field names (first present wins); None -> use the generic aliases ---
    layers_keys: tuple[str, ...] = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
    hidden_keys: tuple[str, ...] = ("hidden_size", "n_embd", "d_model", "dim")
    heads_keys: tuple[str, ...] = ("num_attention_heads", "n_head", "num_heads", "n_heads")
    kv_heads_keys: tuple[str, ...] = ("num_key_value_heads", "num_kv_heads", "n_kv_heads")
    intermediate_keys: tuple[str, ...] = ("intermediate_size", "n_inner", "ffn_dim", "d_ff")
    vocab_keys: tuple[str, ...] = ("vocab_size",)
    # True when the family honours ``num_key_value_heads``/``head_dim``; False means the model
    # always builds MHA with d_h = d / n_h whatever the config says (gpt2, opt, gpt_neox, ...).
    honours_kv_heads: bool = True
    honours_head_dim: bool = True
    # --- MLP ---
    gated_mlp: bool = True  # SwiGLU-style: gate, up, down (3 matrices); else up, down (2)
    mlp_bias_key: str | None = "mlp_bias"  # config key that turns MLP biases on, if any
    mlp_bias_default: bool = False
    # --- attention projections ---
    qkv_layout: QKVLayout = "separate"
    attn_path: str = "model.layers.{i}.self_attn"  # module path of layer i's attention
    q_name: str = "q_proj"
    k_name: str = "k_proj"
    v_name: str = "v_proj"
    qkv_name: str | None = None  # fused/interleaved/conv1d projection name
    o_name: str = "o_proj"
    qkv_bias_key: str | None = "attention_bias"  # config key for q/k/v bias
    qkv_bias_default: bool = False
    o_bias_key: str | None = "attention_bias"
    o_bias_default: bool = False
    qk_norm: bool = False  # per-head RMSNorm on q and k (qwen3, olmo2 is per-layer: see notes)
    rope: bool = True
    # Falcon-style switches of the KV layout: when the config's ``gqa_key`` is false, the model
    # has one KV head if ``mqa_key`` is true, else one per query head (MHA). See
    # :meth:`switched_kv_heads`, the one rule every reader uses.
    gqa_key: str | None = None
    mqa_key: str | None = None
    mqa_default: bool = True  # ``mqa_key`` when the config omits it (FalconConfig: True)
    # --- norms / embeddings ---
    norm_has_bias: bool = False  # LayerNorm with bias (gpt2, opt, gpt_neox, falcon) vs RMSNorm
    tie_default: bool = False  # default of tie_word_embeddings when the config omits it
    learned_positions: bool = False  # absolute position embedding table (gpt2, opt)
    # --- decoupled-head GQA ---
    decoupled: DecoupledSupport = "native"
    decoupled_type: str | None = None  # fallback or custom model_type
    # --- estimator-only facts (config side) ---
    norms_per_layer: int = 2  # normalisation layers per decoder layer, each of size d
    qk_norm_per_layer: bool = False  # q/k norm over all heads (olmo2) instead of per head
    lm_head_bias: bool = False
    positions_keys: tuple[str, ...] = ("n_positions", "max_position_embeddings")
    positions_offset: int = 0  # extra rows of a learned position table (opt: 2)
    ffn_default_multiple: int = 0  # FFN size = multiple * d when the config gives none
    sliding: SlidingRule = "none"
    sliding_pattern: int = 0  # default period for sliding == "pattern"
    sliding_gate_key: str | None = None
    moe: MoESpec | None = None
    mla: bool = False  # multi-head latent attention (DeepSeek-V2/V3)
    mla_indexer: bool = False  # DeepSeek sparse attention: a cached indexer key per token
    attention_sinks: bool = False  # one learned sink logit per head and layer (gpt-oss)
    qk_norm_key: str | None = None  # config flag that turns the q/k norms on (MiniMax-M2)
    # a reader in gqa_retrofit.cost.hybrid that builds a per-layer plan (hybrid layers,
    # per-layer head geometries); None: every layer has the same geometry
    plan: str | None = None
    # HF class names in ``architectures`` that mean this family (a config whose model_type
    # transformers cannot build is read as the family its architectures name)
    architectures: tuple[str, ...] = ()
    # values transformers' config class uses when config.json omits the key (checked against
    # the config classes in tests/cost/test_family_defaults.py)
    config_defaults: dict[str, object] = field(default_factory=dict)
    notes: str = ""
    # --- decoupled == "fallback": the equivalent type's limits ---
    # config values the equivalent type has no field for (another value refuses the geometry)
    fallback_requires: dict[str, object] = field(default_factory=dict)
    # values the equivalent type gets whatever the source config says
    fallback_set: dict[str, object] = field(default_factory=dict)

    @property
    def supports_conversion(self) -> bool:
        return self.decoupled != "none"

    def switched_kv_heads(self, value: Callable[[str, Any], Any], heads: int) -> int | None:
        """The KV heads the layout switches fix, or None where the config's KV field counts.

        Falcon-style families: when ``gqa_key`` is false (or absent), one KV head if
        ``mqa_key`` is true (absent: ``mqa_default``), else one per query head.

        Args:
            value: reads one config key with a default, e.g. ``dict.get`` on a parsed
                ``config.json`` or ``lambda key, default: getattr(config, key, default)``.
            heads: the config's query heads.
        """
        if self.gqa_key is None or value(self.gqa_key, False):
            return None
        if self.mqa_key is not None and value(self.mqa_key, self.mqa_default):
            return 1
        return heads
