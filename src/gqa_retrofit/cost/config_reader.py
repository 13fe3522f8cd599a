"""Normalized config reader: one :class:`ModelShape` from any supported ``config.json``.

Field names, defaults and quirks of each family come from the family table
(:mod:`gqa_retrofit.arch.families`); this module only applies them. It reads plain dicts (the
parsed JSON) and imports neither torch nor transformers, so estimating stays fast.

Notation: ``L`` layers, ``d`` hidden size, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head
size, ``d_ff`` FFN size, ``V`` vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..arch import FAMILIES, FamilySpec, supported_families
from ..arch.families import ARCHITECTURE_TYPES, TYPE_ALIASES
from ..arch.geometry import Geometry, check_geometry
from ..errors import ConfigError, UnsupportedFamilyError

if TYPE_CHECKING:
    from .layer_plan import LayerPlan

# Generic spec used for model types without a family entry (checked by meta instantiation).
GENERIC_FAMILY = FamilySpec("generic")


@dataclass(frozen=True)
class MLAShape:
    """Multi-head latent attention sizes (DeepSeek-V2/V3)."""

    q_lora_rank: int | None  # None: q is projected directly from d
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    index_heads: int = 0  # DeepSeek sparse attention's indexer (0: none)
    index_head_dim: int = 0  # cached per token and layer next to the latent

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True)
class MoEShape:
    """Mixture-of-experts sizes; ``moe_layers[i]`` says whether layer i is a MoE layer."""

    experts: int
    top_k: int
    expert_ffn: int  # FFN size of one routed expert
    shared_ffn: int  # total FFN size of the shared expert(s), 0 if none
    moe_layers: tuple[bool, ...]
    router_bias: bool = False
    expert_bias: bool = False


@dataclass(frozen=True)
class ModelShape(Geometry):
    """Everything the cost formulas need about a decoder-only model, normalized: its
    :class:`~gqa_retrofit.arch.geometry.Geometry` and the rest of its sizes.

    ``kv_heads`` is what the weights hold; ``cached_kv_heads`` what the KV cache holds (they
    differ for falcon's new decoder architecture, which caches every query head).
    ``layer_windows[i]`` is layer i's sliding window (tokens) or None for full attention.
    """

    model_type: str
    ffn: int  # dense FFN size (d_ff)
    gated_ffn: bool
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: str = "none"  # "none", "head" (d_h each for q and k) or "layer" (n_h*d_h, n_kv*d_h)
    norms_per_layer: int = 2
    norm_has_bias: bool = False
    lm_head_bias: bool = False
    positions: int = 0  # rows of a learned absolute position table
    embed_dim: int = 0  # width of the token embedding when it differs from d (opt), else 0
    cached_kv_heads: int = 0  # 0 means kv_heads
    layer_windows: tuple[int | None, ...] = ()
    max_position: int | None = None
    moe: MoEShape | None = None
    mla: MLAShape | None = None
    text_config: bool = False  # read from the text sub-config of a multimodal config
    attention_sinks: bool = False
    chunked_layers: tuple[bool, ...] = ()  # layer i uses chunked attention (window = chunk)
    plan: LayerPlan | None = field(default=None, compare=False)  # per-layer plan (hybrids)
    notes: tuple[str, ...] = ()  # how the config was read (shown in reports)

    @property
    def cache_heads(self) -> int:
        return self.cached_kv_heads or self.kv_heads

    @property
    def windows(self) -> tuple[int | None, ...]:
        return self.layer_windows or (None,) * self.layers

    @property
    def attention_kind(self) -> str:
        """``mla``, ``mqa`` (one KV head), ``mha`` (as many KV as query heads) or ``gqa``."""
        if self.mla is not None:
            return "mla"
        if self.cache_heads == self.heads:
            return "mha"
        if self.cache_heads == 1:
            return "mqa"
        return "gqa"

    def with_heads(self, heads: int, kv_heads: int, head_dim: int | None = None) -> ModelShape:
        """The same model with another attention geometry (a what-if retrofit).

        Raises:
            ConfigError: non-positive values, ``heads`` not divisible by ``kv_heads``, or an MLA
                model (its cache is a latent, not KV heads).
        """
        head_dim = self.head_dim if head_dim is None else head_dim
        check_geometry(heads, kv_heads, head_dim, what="what-if")
        if self.plan is not None:
            raise ConfigError(
                f"what-if head geometries are not defined for {self.model_type} (its layers "
                "differ); use a model whose layers share one attention geometry"
            )
        if self.mla is not None:
            raise ConfigError(
                f"what-if head geometries are not defined for MLA models ({self.model_type}); "
                "use a GQA/MHA model"
            )
        return dataclasses.replace(
            self, heads=heads, kv_heads=kv_heads, head_dim=head_dim, cached_kv_heads=0
        )


# Sane upper bounds: beyond them a config is hostile or corrupt, and the estimator refuses it
# (naming the field) instead of looping over millions of layers or overflowing memory.
LIMITS: dict[str, int] = {
    "number of layers": 4096,
    "number of attention heads": 16384,
    "number of KV heads": 16384,
    "hidden size": 1 << 20,
    "head_dim": 1 << 16,
    "vocabulary size": 1 << 24,
    "FFN (intermediate) size": 1 << 24,
    "expert FFN size": 1 << 24,
    "number of experts": 1 << 16,
}
DEFAULT_LIMIT = 1 << 24


def _value(config: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def _int(config: Mapping[str, Any], keys: Sequence[str], *, field: str, minimum: int = 1) -> int:
    value = _value(config, keys)
    if value is None:
        raise ConfigError(
            f"config of model type {config.get('model_type')!r} has no {field} "
            f"(expected one of: {', '.join(keys)})"
        )
    key = next((k for k in keys if config.get(k) is not None), field)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"config field {key!r} ({field}) must be an integer >= {minimum}, got {value!r}"
        )
    limit = LIMITS.get(field, DEFAULT_LIMIT)
    if value > limit:
        raise ConfigError(
            f"config field {key!r} ({field}) is {value:,}, past the sane limit of {limit:,}; "
            "is this config corrupt?"
        )
    return value


def config_int(config: Mapping[str, Any], key: str, *, field: str, minimum: int = 1) -> int:
    """One integer field, validated like every other (public for the family readers).

    Raises:
        ConfigError: missing, not an integer, below ``minimum`` or past the sane limit.
    """
    return _int(config, [key], field=field, minimum=minimum)


def _flag(config: Mapping[str, Any], key: str | None, default: bool) -> bool:
    if key is None or config.get(key) is None:
        return default
    return bool(config[key])


def layer_types(config: Mapping[str, Any], layers: int) -> list[str] | None:
    """The config's ``layer_types`` list, or None when it has none.

    Raises:
        ConfigError: ``layer_types`` is not a list of strings with one entry per layer.
    """
    types = config.get("layer_types")
    if types is None:
        return None
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ConfigError("config field 'layer_types' must be a list of strings")
    if len(types) != layers:
        raise ConfigError(
            f"config field 'layer_types' has {len(types)} entries for {layers} layers"
        )
    return types


def _layer_windows(
    config: Mapping[str, Any], spec: FamilySpec, layers: int
) -> tuple[tuple[int | None, ...], tuple[bool, ...]]:
    """Per-layer attention windows and which of them are chunks (see ``SlidingRule``)."""
    types = layer_types(config, layers)
    chunk = config.get("attention_chunk_size")
    chunk = chunk if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0 else None
    if spec.sliding == "no_rope_chunked" and chunk is not None:
        if types is None:
            interval = config.get("no_rope_layer_interval") or 4
            no_rope = config.get("no_rope_layers") or [
                int((i + 1) % interval != 0) for i in range(layers)
            ]
            types = ["chunked_attention" if r else "full_attention" for r in no_rope]
        chunked = tuple(t == "chunked_attention" for t in types)
        return tuple(chunk if c else None for c in chunked), chunked
    window = config.get("sliding_window")
    if spec.sliding_gate_key is not None and not config.get(spec.sliding_gate_key, False):
        window = None
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return (None,) * layers, ()
    if types is not None:
        return tuple(window if t == "sliding_attention" else None for t in types), ()
    if spec.sliding == "all":
        return (window,) * layers, ()
    if spec.sliding == "max_window_layers":
        first = config.get("max_window_layers", 28)
        return tuple(window if i >= first else None for i in range(layers)), ()
    if spec.sliding == "pattern":
        period = config.get("sliding_window_pattern") or spec.sliding_pattern
        return tuple(window if (i + 1) % period else None for i in range(layers)), ()
    return (None,) * layers, ()


def _moe_shape(config: Mapping[str, Any], spec: FamilySpec, layers: int) -> MoEShape | None:
    keys = spec.moe
    if keys is None:
        return None
    if not _value(config, keys.experts_keys):
        return None
    experts = _int(config, keys.experts_keys, field="number of experts")
    top_k = _int(config, [keys.top_k_key], field="experts per token")
    expert_ffn = _int(config, [keys.expert_ffn_key], field="expert FFN size")
    shared = int(config.get(keys.shared_experts_key) or 0) if keys.shared_experts_key else 0
    shared_ffn = shared * expert_ffn
    if keys.shared_ffn_key and config.get(keys.shared_ffn_key):
        shared_ffn = _int(config, [keys.shared_ffn_key], field="FFN (intermediate) size")
    first_dense = int(config.get(keys.first_dense_key) or 0) if keys.first_dense_key else 0
    step = int(config.get(keys.sparse_step_key) or 1) if keys.sparse_step_key else 1
    dense = set(config.get(keys.dense_layers_key) or []) if keys.dense_layers_key else set()
    moe_layers = tuple(
        i >= first_dense and (i + 1) % step == 0 and i not in dense for i in range(layers)
    )
    explicit = config.get(keys.moe_layers_key) if keys.moe_layers_key else None
    if isinstance(explicit, list):
        moe_layers = tuple(i in set(explicit) for i in range(layers))
    types = config.get(keys.mlp_types_key) if keys.mlp_types_key else None
    if isinstance(types, list):
        if len(types) != layers:
            raise ConfigError(
                f"config field {keys.mlp_types_key!r} has {len(types)} entries for {layers} layers"
            )
        moe_layers = tuple(t == "sparse" for t in types)
    return MoEShape(
        experts,
        top_k,
        expert_ffn,
        shared_ffn,
        moe_layers,
        router_bias=keys.router_bias,
        expert_bias=keys.expert_bias,
    )


def _mla_shape(config: Mapping[str, Any], spec: FamilySpec) -> MLAShape:
    q_rank = config.get("q_lora_rank")
    index_heads = index_dim = 0
    if spec.mla_indexer:
        index_heads = _int(config, ["index_n_heads"], field="number of attention heads")
        index_dim = _int(config, ["index_head_dim"], field="head_dim")
    return MLAShape(
        q_lora_rank=_int(config, ["q_lora_rank"], field="q_lora_rank") if q_rank else None,
        kv_lora_rank=_int(config, ["kv_lora_rank"], field="kv_lora_rank"),
        qk_nope_head_dim=_int(config, ["qk_nope_head_dim"], field="qk_nope_head_dim"),
        qk_rope_head_dim=_int(config, ["qk_rope_head_dim"], field="qk_rope_head_dim"),
        v_head_dim=_int(config, ["v_head_dim"], field="v_head_dim"),
        index_heads=index_heads,
        index_head_dim=index_dim,
    )


def _falcon_overrides(
    config: Mapping[str, Any], spec: FamilySpec, heads: int, hidden: int
) -> dict[str, Any]:
    """Falcon's three attention layouts (new decoder architecture, multi-query, MHA)."""
    head_dim = hidden // heads
    switched = spec.switched_kv_heads(config.get, heads)
    kv = switched if switched is not None else config.get("num_kv_heads") or heads
    if config.get("new_decoder_architecture"):
        # weights hold n_kv heads, but the cache stores k/v expanded to every query head
        lns = config.get("num_ln_in_parallel_attn") or 2
        return {
            "head_dim": head_dim,
            "kv_heads": kv,
            "cached_kv_heads": heads,
            "norms_per_layer": lns,
        }
    norms = 1 if config.get("parallel_attn", True) else 2
    return {"head_dim": head_dim, "kv_heads": kv, "norms_per_layer": norms}


def read_config(config: Mapping[str, Any], *, family: FamilySpec | None = None) -> ModelShape:
    """Normalize a parsed ``config.json`` into a :class:`ModelShape`.

    Multimodal configs whose own type has no family entry are read through their
    ``text_config`` (the language decoder).

    Args:
        config: the parsed ``config.json``.
        family: use this spec instead of looking ``model_type`` up (the generic fallback).

    Raises:
        ConfigError: a required field is missing or invalid (the message names it).
        UnsupportedFamilyError: ``model_type`` has no family entry and no ``family`` was given.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError("config has no 'model_type' field; is this a transformers config.json?")
    text_config = config.get("text_config")
    if family is None and model_type not in FAMILIES and isinstance(text_config, Mapping):
        merged = dict(text_config)
        if "tie_word_embeddings" not in merged and "tie_word_embeddings" in config:
            merged["tie_word_embeddings"] = config["tie_word_embeddings"]
        merged.setdefault("model_type", f"{model_type}_text")
        return dataclasses.replace(read_config(merged), text_config=True)
    notes: list[str] = []
    if family is None:
        family, note = resolve_family(config)
        if note:
            notes.append(note)
    spec = family
    # keys config.json omits take the value transformers' config class would use
    config = {**spec.config_defaults, **config}
    if spec.plan is not None:
        from .hybrid import read_plan_config

        shape = read_plan_config(config, spec)
        return dataclasses.replace(shape, notes=(*notes, *shape.notes))

    layers = _int(config, spec.layers_keys, field="number of layers")
    hidden = _int(config, spec.hidden_keys, field="hidden size")
    heads = _int(config, spec.heads_keys, field="number of attention heads")
    vocab = _int(config, spec.vocab_keys, field="vocabulary size")
    kv_heads = heads
    if spec.honours_kv_heads and _value(config, spec.kv_heads_keys) is not None:
        kv_heads = _int(config, spec.kv_heads_keys, field="number of KV heads")
    if spec.honours_head_dim and config.get("head_dim") is not None:
        head_dim = _int(config, ["head_dim"], field="head_dim")
    else:
        if hidden % heads:
            raise ConfigError(
                f"hidden size {hidden} is not divisible by {heads} heads and the config gives "
                "no head_dim"
            )
        head_dim = hidden // heads
    ffn_value = _value(config, spec.intermediate_keys)
    if ffn_value is None and spec.ffn_default_multiple:
        ffn = spec.ffn_default_multiple * hidden
    else:
        ffn = _int(config, spec.intermediate_keys, field="FFN (intermediate) size")

    qk_norm = "none"
    if spec.qk_norm and _flag(config, spec.qk_norm_key, True):
        qk_norm = "layer" if spec.qk_norm_per_layer else "head"
    positions = 0
    if spec.learned_positions:
        positions = _int(config, spec.positions_keys, field="position table size")
        positions += spec.positions_offset
    embed_dim = 0
    projection = config.get("word_embed_proj_dim")
    if isinstance(projection, int) and projection != hidden:
        embed_dim = projection
    max_position = _value(config, ("max_position_embeddings", "n_positions", "seq_length"))
    windows, chunked = _layer_windows(config, spec, layers)
    fields: dict[str, Any] = dict(
        model_type=model_type,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=ffn,
        gated_ffn=spec.gated_mlp,
        vocab=vocab,
        tied_embeddings=_flag(config, "tie_word_embeddings", spec.tie_default),
        qkv_bias=_flag(config, spec.qkv_bias_key, spec.qkv_bias_default),
        o_bias=_flag(config, spec.o_bias_key, spec.o_bias_default),
        mlp_bias=_flag(config, spec.mlp_bias_key, spec.mlp_bias_default),
        qk_norm=qk_norm,
        norms_per_layer=spec.norms_per_layer,
        norm_has_bias=spec.norm_has_bias,
        lm_head_bias=spec.lm_head_bias,
        positions=positions,
        embed_dim=embed_dim,
        layer_windows=windows,
        chunked_layers=chunked,
        attention_sinks=spec.attention_sinks,
        max_position=int(max_position) if isinstance(max_position, int) else None,
        moe=_moe_shape(config, spec, layers),
        mla=_mla_shape(config, spec) if spec.mla else None,
    )
    if model_type == "falcon":
        fields.update(_falcon_overrides(config, spec, heads, hidden))
    shape = ModelShape(**fields, notes=tuple(notes))
    check_geometry(shape.heads, shape.kv_heads, shape.head_dim)
    return shape


def resolve_family(config: Mapping[str, Any]) -> tuple[FamilySpec, str]:
    """The family spec of ``config`` and a note when it was not found by ``model_type``.

    A model type without an entry is read as the family its ``architectures`` name
    (``DeepseekV3ForCausalLM``), or as the type transformers itself maps it to
    (:data:`~gqa_retrofit.arch.families.TYPE_ALIASES`, e.g. ``kimi_k2`` -> ``deepseek_v3``).

    Raises:
        UnsupportedFamilyError: none of these names a supported family.
    """
    model_type = str(config.get("model_type"))
    if model_type in FAMILIES:
        return FAMILIES[model_type], ""
    architectures = config.get("architectures")
    for name in architectures if isinstance(architectures, list) else []:
        target = ARCHITECTURE_TYPES.get(name)
        if target is not None:
            return FAMILIES[target], (
                f"model type {model_type!r} read as {target} (architectures names {name})"
            )
    target = TYPE_ALIASES.get(model_type)
    if target is not None:
        return FAMILIES[
            target
        ], f"model type {model_type!r} read as {target} (as transformers does)"
    raise UnsupportedFamilyError(
        f"model type {model_type!r} is not supported; supported: " + ", ".join(supported_families())
    )
