"""Family readers that build a per-layer :class:`~gqa_retrofit.cost.layer_plan.LayerPlan`.

For models whose layers differ: gated-DeltaNet hybrids (Qwen3-Next, Qwen3.5), Mamba2 hybrids
(Nemotron-H) and per-layer attention geometries (MiMo-V2-Flash). Each reader is a function
of the parsed config, registered under the name a family's ``FamilySpec.plan`` gives; the
shapes follow the transformers modeling code (checked by meta-device instantiation and by
real cache tensors in ``tests/cost``).

Notation: ``d`` hidden size, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head size;
gated DeltaNet: ``n_k``/``n_v`` key/value heads of ``d_k``/``d_v``; Mamba2: ``n_m`` heads of
``d_m``, ``g`` groups, state size ``N``, conv kernel ``K``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..arch import FamilySpec
from ..errors import ConfigError
from .config_reader import ModelShape, check_geometry, config_int, layer_types
from .layer_plan import LayerCache, LayerCost, LayerPlan

PlanReader = Callable[[Mapping[str, Any], FamilySpec], ModelShape]
PLAN_READERS: dict[str, PlanReader] = {}


def plan_reader(name: str) -> Callable[[PlanReader], PlanReader]:
    """Register a plan reader under ``name`` (the value of ``FamilySpec.plan``)."""

    def register(func: PlanReader) -> PlanReader:
        PLAN_READERS[name] = func
        return func

    return register


def read_plan_config(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Read ``config`` with the plan reader its family names.

    Raises:
        ConfigError: a missing or invalid field (named in the message).
    """
    assert spec.plan is not None
    return PLAN_READERS[spec.plan](config, spec)


def _i(config: Mapping[str, Any], key: str, field: str | None = None, minimum: int = 1) -> int:
    return config_int(config, key, field=field or key, minimum=minimum)


def _flag(config: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = config.get(key)
    return default if value is None else bool(value)


def _common(config: Mapping[str, Any]) -> dict[str, int]:
    layers = _i(config, "num_hidden_layers", "number of layers")
    hidden = _i(config, "hidden_size", "hidden size")
    heads = _i(config, "num_attention_heads", "number of attention heads")
    kv = config.get("num_key_value_heads")
    kv_heads = heads if kv is None else _i(config, "num_key_value_heads", "number of KV heads")
    if config.get("head_dim") is not None:
        head_dim = _i(config, "head_dim", "head_dim")
    elif hidden % heads:
        raise ConfigError(f"hidden size {hidden} is not divisible by {heads} heads (no head_dim)")
    else:
        head_dim = hidden // heads
    check_geometry(heads, kv_heads, head_dim)
    return dict(
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=_i(config, "vocab_size", "vocabulary size"),
    )


def _shape(
    config: Mapping[str, Any],
    spec: FamilySpec,
    dims: dict[str, int],
    plan: LayerPlan,
    ffn: int,
) -> ModelShape:
    max_position = config.get("max_position_embeddings")
    return ModelShape(
        model_type=str(config["model_type"]),
        layers=dims["layers"],
        hidden=dims["hidden"],
        heads=dims["heads"],
        kv_heads=dims["kv_heads"],
        head_dim=dims["head_dim"],
        vocab=dims["vocab"],
        ffn=ffn,
        gated_ffn=spec.gated_mlp,
        tied_embeddings=_flag(config, "tie_word_embeddings", spec.tie_default),
        max_position=max_position if isinstance(max_position, int) else None,
        plan=plan,
        notes=plan.notes,
    )


def _attention_cache(
    heads: int, kv_heads: int, d_qk: int, d_v: int, window: int | None
) -> LayerCache:
    return LayerCache(
        kind="full" if window is None else "sliding",
        kv_vectors=((kv_heads, d_qk), (kv_heads, d_v)),
        window=window,
        attention_flops_per_key=2 * heads * (d_qk + d_v),
        heads=heads,
        kv_heads=kv_heads,
    )


# ------------------------------------------------------------ gated DeltaNet (Qwen3-Next, 3.5)


def _gated_mlp(d: int, ffn: int) -> int:
    return 3 * d * ffn


def _qwen_moe(config: Mapping[str, Any], d: int) -> tuple[int, int] | None:
    """(all, active) parameters of a Qwen-style MoE block (router, experts, a shared expert
    with its sigmoid gate), or None for a dense model."""
    experts = config.get("num_experts")
    if not experts:
        return None
    experts = _i(config, "num_experts", "number of experts")
    top_k = _i(config, "num_experts_per_tok", "experts per token")
    expert = _gated_mlp(d, _i(config, "moe_intermediate_size", "expert FFN size"))
    shared_ffn = config.get("shared_expert_intermediate_size") or 0
    shared = _gated_mlp(d, shared_ffn) + d if shared_ffn else 0  # + shared_expert_gate
    router = experts * d
    return router + experts * expert + shared, router + top_k * expert + shared


def _qwen_moe_layers(config: Mapping[str, Any], layers: int) -> list[bool]:
    if not config.get("num_experts"):
        return [False] * layers
    step = config.get("decoder_sparse_step") or 1
    dense = set(config.get("mlp_only_layers") or [])
    return [(i + 1) % step == 0 and i not in dense for i in range(layers)]


def _deltanet_layer(config: Mapping[str, Any], d: int) -> tuple[int, int, LayerCache]:
    """(parameters, matmul weights, cache) of one gated-DeltaNet token mixer.

    ``in_proj`` d -> 2·n_k·d_k + 2·n_v·d_v (q, k, v, z) and d -> 2·n_v (b, a); depthwise conv
    over q, k, v (K taps, no bias); ``dt_bias``, ``A_log`` (n_v each); gated RMSNorm (d_v);
    ``out_proj`` n_v·d_v -> d. Cache: conv window (2·n_k·d_k + n_v·d_v)·K at the activation
    dtype and the recurrent state n_v·d_k·d_v in float32.
    """
    n_k = _i(config, "linear_num_key_heads", "number of attention heads")
    n_v = _i(config, "linear_num_value_heads", "number of attention heads")
    d_k = _i(config, "linear_key_head_dim", "head_dim")
    d_v = _i(config, "linear_value_head_dim", "head_dim")
    kernel = _i(config, "linear_conv_kernel_dim", "head_dim")
    key_dim, value_dim = n_k * d_k, n_v * d_v
    conv_dim = 2 * key_dim + value_dim
    matmul = d * (2 * key_dim + 2 * value_dim) + d * 2 * n_v + value_dim * d
    params = matmul + conv_dim * kernel + 2 * n_v + d_v
    cache = LayerCache(
        kind="state",
        state_values=conv_dim * kernel,
        state_fp32_values=n_v * d_k * d_v,
        heads=n_v,
    )
    return params, matmul, cache


def _gated_attention(config: Mapping[str, Any], dims: dict[str, int]) -> tuple[int, int]:
    """(parameters, matmul weights) of Qwen3-Next's gated attention: q_proj also emits the
    output gate (2·n_h·d_h), per-head q/k RMSNorms."""
    d, h, kv, dh = dims["hidden"], dims["heads"], dims["kv_heads"], dims["head_dim"]
    matmul = d * 2 * h * dh + 2 * d * kv * dh + h * dh * d
    params = matmul + 2 * dh
    if _flag(config, "attention_bias"):
        params += 2 * h * dh + 2 * kv * dh + d
    return params, matmul


@plan_reader("gated_deltanet")
def read_gated_deltanet(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Qwen3-Next / Qwen3.5 (dense and MoE): ``linear_attention`` layers are gated DeltaNet,
    ``full_attention`` layers gated attention; MLPs dense or MoE per layer."""
    dims = _common(config)
    layers, d = dims["layers"], dims["hidden"]
    types = layer_types(config, layers)
    if types is None:
        interval = config.get("full_attention_interval") or 4
        types = [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(layers)
        ]
    moe = _qwen_moe(config, d)
    moe_layers = _qwen_moe_layers(config, layers)
    ffn = config.get("intermediate_size") or 0
    attn_params, attn_matmul = _gated_attention(config, dims)
    plan = []
    for i, kind in enumerate(types):
        if kind == "linear_attention":
            params, matmul, cache = _deltanet_layer(config, d)
        elif kind == "full_attention":
            params, matmul = attn_params, attn_matmul
            cache = _attention_cache(
                dims["heads"], dims["kv_heads"], dims["head_dim"], dims["head_dim"], None
            )
        else:
            raise ConfigError(f"layer_types[{i}] is {kind!r}; expected linear/full_attention")
        if moe is not None and moe_layers[i]:
            all_p, active = moe
            mlp_active = active
        else:
            ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
            all_p = mlp_active = _gated_mlp(d, ffn)
        norms = 2 * d
        plan.append(
            LayerCost(
                cache=cache,
                params=params + all_p + norms,
                active_params=params + mlp_active + norms,
                matmul_params=matmul + mlp_active,
            )
        )
    return _shape(config, spec, dims, LayerPlan(tuple(plan), other_params=d), int(ffn))


# ------------------------------------------------------------ Mamba2 hybrids (Nemotron-H)

_NEMOTRON_KINDS = {
    "M": "mamba",
    "mamba": "mamba",
    "linear_attention": "mamba",
    "*": "attention",
    "attention": "attention",
    "full_attention": "attention",
    "-": "mlp",
    "mlp": "mlp",
    "E": "moe",
    "moe": "moe",
}


def _nemotron_kinds(config: Mapping[str, Any]) -> list[str]:
    pattern = config.get("layers_block_type") or config.get("hybrid_override_pattern")
    if isinstance(pattern, str):
        pattern = list(pattern)
    if not isinstance(pattern, list) or not pattern:
        raise ConfigError(
            "nemotron_h config needs 'hybrid_override_pattern' or 'layers_block_type'"
        )
    kinds = []
    for i, entry in enumerate(pattern):
        if entry not in _NEMOTRON_KINDS:
            raise ConfigError(
                f"layer {i} block type {entry!r} unknown; valid: M, *, -, E (or their names)"
            )
        kinds.append(_NEMOTRON_KINDS[entry])
    layers = config.get("num_hidden_layers")
    if isinstance(layers, int) and layers != len(kinds) and "layers_block_type" in config:
        raise ConfigError(f"layers_block_type has {len(kinds)} entries for {layers} layers")
    return kinds


# config keys of a Mamba2 mixer, per family (falcon_h1 names its output bias differently)
_GRANITE_MAMBA2_KEYS = dict(
    heads="mamba_n_heads",
    head_dim="mamba_d_head",
    groups="mamba_n_groups",
    state="mamba_d_state",
    kernel="mamba_d_conv",
    conv_bias="mamba_conv_bias",
    in_bias="mamba_proj_bias",
    out_bias="mamba_proj_bias",
)
MAMBA2_KEYS = {
    "nemotron_h": dict(
        heads="mamba_num_heads",
        head_dim="mamba_head_dim",
        groups="n_groups",
        state="ssm_state_size",
        kernel="conv_kernel",
        conv_bias="use_conv_bias",
        in_bias="use_bias",
        out_bias="use_bias",
    ),
    "granitemoehybrid": _GRANITE_MAMBA2_KEYS,
    "falcon_h1": {**_GRANITE_MAMBA2_KEYS, "out_bias": "projectors_bias"},
}


def _mamba_layer(
    config: Mapping[str, Any], d: int, keys: Mapping[str, str], *, gated_norm: bool = True
) -> tuple[int, int, LayerCache]:
    """Mamba2 mixer: ``in_proj`` d -> 2·n_m·d_m + 2·g·N + n_m; depthwise conv over
    n_m·d_m + 2·g·N channels (K taps, optional bias); ``dt_bias``, ``A_log``, ``D`` (n_m
    each); gated RMSNorm (n_m·d_m) unless ``gated_norm`` is False; ``out_proj`` n_m·d_m -> d.
    Cache: the conv window at the activation dtype and the SSM state n_m·d_m·N in float32."""
    n_m = _i(config, keys["heads"], "number of attention heads")
    d_m = _i(config, keys["head_dim"], "head_dim")
    groups = _i(config, keys["groups"], "number of KV heads")
    state = _i(config, keys["state"], "head_dim")
    kernel = _i(config, keys["kernel"], "head_dim")
    inner = n_m * d_m
    conv_dim = inner + 2 * groups * state
    projection = inner + conv_dim + n_m
    matmul = d * projection + inner * d
    params = matmul + conv_dim * kernel + 3 * n_m + (inner if gated_norm else 0)
    if _flag(config, keys["conv_bias"], True):
        params += conv_dim
    if _flag(config, keys["in_bias"]):
        params += projection
    if _flag(config, keys["out_bias"]):
        params += d
    cache = LayerCache(
        kind="state",
        state_values=conv_dim * kernel,
        state_fp32_values=n_m * d_m * state,
        heads=n_m,
    )
    return params, matmul, cache


def _plain_mlp(config: Mapping[str, Any], d: int, ffn: int) -> int:
    return 2 * d * ffn + ((ffn + d) if _flag(config, "mlp_bias") else 0)


def _nemotron_moe(config: Mapping[str, Any], d: int) -> tuple[int, int, int]:
    """(all, active, active matmul) parameters of a Nemotron-H MoE block: router, non-gated
    experts (on a latent of ``moe_latent_size`` if set), one shared non-gated expert."""
    experts = _i(config, "n_routed_experts", "number of experts")
    top_k = _i(config, "num_experts_per_tok", "experts per token")
    f_e = _i(config, "moe_intermediate_size", "expert FFN size")
    latent = config.get("moe_latent_size")
    width = _i(config, "moe_latent_size", "hidden size") if latent else d
    expert = 2 * f_e * width
    shared_ffn = config.get("moe_shared_expert_intermediate_size") or 0
    shared = _plain_mlp(config, d, shared_ffn) if shared_ffn else 0
    projections = 0
    if latent:
        projections = 2 * d * width + ((width + d) if _flag(config, "mlp_bias") else 0)
    router = experts * d
    fixed = router + shared + projections
    matmul = router + top_k * expert + 2 * d * shared_ffn + (2 * d * width if latent else 0)
    return fixed + experts * expert, fixed + top_k * expert, matmul


@plan_reader("nemotron_h")
def read_nemotron_h(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Nemotron-H: each block is one of Mamba2 (``M``), attention (``*``), MLP (``-``) or MoE
    (``E``), with one RMSNorm; no q/k/v/o biases."""
    kinds = _nemotron_kinds(config)
    dims = _common({**config, "num_hidden_layers": len(kinds)})
    d = dims["hidden"]
    h, kv, dh = dims["heads"], dims["kv_heads"], dims["head_dim"]
    plan = []
    ffn = 0
    for kind in kinds:
        if kind == "mamba":
            params, matmul, cache = _mamba_layer(config, d, MAMBA2_KEYS["nemotron_h"])
            active = params
        elif kind == "attention":
            matmul = 2 * d * dh * (h + kv)
            params = active = matmul
            cache = _attention_cache(h, kv, dh, dh, None)
        elif kind == "mlp":
            ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
            params = active = _plain_mlp(config, d, ffn)
            matmul = 2 * d * ffn
            cache = LayerCache(kind="none")
        else:
            params, active, matmul = _nemotron_moe(config, d)
            cache = LayerCache(kind="none")
        plan.append(
            LayerCost(
                cache=cache, params=params + d, active_params=active + d, matmul_params=matmul
            )
        )
    dims["layers"] = len(kinds)
    return _shape(config, spec, dims, LayerPlan(tuple(plan), other_params=d), ffn)


# ------------------------------------------------------------ per-layer geometry (MiMo-V2-Flash)


@plan_reader("mimo_v2_flash")
def read_mimo_v2_flash(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """MiMo-V2-Flash: full-attention layers with ``n_kv`` KV heads, sliding-window layers
    with ``2·n_kv`` KV heads and a sink logit per head; K of ``head_dim``, V of
    ``v_head_dim``; dense or MoE MLP per ``mlp_layer_types``. transformers reads the Hub's
    ``sliding_window_size`` as a window of ``sliding_window_size + 1`` (query included)."""
    dims = _common(config)
    layers, d, h, kv = dims["layers"], dims["hidden"], dims["heads"], dims["kv_heads"]
    d_qk = dims["head_dim"]
    d_v = _i(config, "v_head_dim", "head_dim")
    window = config.get("sliding_window")
    if config.get("sliding_window_size") is not None:
        window = _i(config, "sliding_window_size", "sliding window") + 1
    types = layer_types(config, layers) or [
        "full_attention" if (i == 0 or not (i + 1) % 6) else "sliding_attention"
        for i in range(layers)
    ]
    mlp_types = config.get("mlp_layer_types") or ["dense"] + ["sparse"] * (layers - 1)
    if len(mlp_types) != layers:
        raise ConfigError(f"mlp_layer_types has {len(mlp_types)} entries for {layers} layers")
    bias = _flag(config, "attention_bias")
    ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
    plan = []
    for kind, mlp in zip(types, mlp_types, strict=True):
        sliding = kind == "sliding_attention"
        if sliding and not isinstance(window, int):
            raise ConfigError("mimo_v2_flash config has sliding layers but no sliding_window")
        n_kv = 2 * kv if sliding else kv
        matmul = d * h * d_qk + d * n_kv * (d_qk + d_v) + h * d_v * d
        params = matmul + (h if sliding else 0)
        if bias:
            params += h * d_qk + n_kv * (d_qk + d_v) + d
        if mlp == "sparse":
            experts = _i(config, "n_routed_experts", "number of experts")
            top_k = _i(config, "num_experts_per_tok", "experts per token")
            expert = _gated_mlp(d, _i(config, "moe_intermediate_size", "expert FFN size"))
            all_p, active = experts * d + experts * expert, experts * d + top_k * expert
        else:
            all_p = active = _gated_mlp(d, ffn)
        cache = _attention_cache(h, n_kv, d_qk, d_v, window if sliding else None)
        plan.append(
            LayerCost(
                cache=cache,
                params=params + all_p + 2 * d,
                active_params=params + active + 2 * d,
                matmul_params=matmul + active,
            )
        )
    return _shape(config, spec, dims, LayerPlan(tuple(plan), other_params=d), ffn)


# ------------------------------------------------------------ Granite-4.0 hybrids, Falcon-H1, Jamba


def _attention_params(config: Mapping[str, Any], dims: dict[str, int], bias_key: str) -> int:
    d, h, kv, dh = dims["hidden"], dims["heads"], dims["kv_heads"], dims["head_dim"]
    params = 2 * d * dh * (h + kv)
    if _flag(config, bias_key):
        params += dh * (h + 2 * kv) + d
    return params


def _granite_moe(config: Mapping[str, Any], d: int) -> tuple[int, int]:
    """(all, active) of Granite's FFN: a MoE block when ``num_local_experts > 0`` plus the
    always-present shared gated MLP (``input_linear`` d -> 2·f_s, ``output_linear``)."""
    shared_ffn = _i(config, "shared_intermediate_size", "FFN (intermediate) size")
    shared = 3 * d * shared_ffn
    experts = config.get("num_local_experts") or 0
    if not experts:
        return shared, shared
    experts = _i(config, "num_local_experts", "number of experts")
    top_k = _i(config, "num_experts_per_tok", "experts per token")
    expert = _gated_mlp(d, _i(config, "intermediate_size", "expert FFN size"))
    return experts * d + experts * expert + shared, experts * d + top_k * expert + shared


@plan_reader("granitemoehybrid")
def read_granitemoehybrid(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Granite-4.0 hybrids: ``layer_types`` entries ``mamba`` (Mamba2) or ``attention``; every
    layer has the MoE block (if any experts) and the shared MLP, two RMSNorms."""
    dims = _common(config)
    layers, d = dims["layers"], dims["hidden"]
    types = layer_types(config, layers) or ["mamba"] * layers
    ffn_all, ffn_active = _granite_moe(config, d)
    plan = []
    for i, kind in enumerate(types):
        if kind in ("mamba", "linear_attention"):
            params, matmul, cache = _mamba_layer(config, d, MAMBA2_KEYS["granitemoehybrid"])
        elif kind in ("attention", "full_attention"):
            params = _attention_params(config, dims, "attention_bias")
            matmul = 2 * d * dims["head_dim"] * (dims["heads"] + dims["kv_heads"])
            cache = _attention_cache(
                dims["heads"], dims["kv_heads"], dims["head_dim"], dims["head_dim"], None
            )
        else:
            raise ConfigError(f"layer_types[{i}] is {kind!r}; expected mamba or attention")
        plan.append(
            LayerCost(
                cache=cache,
                params=params + ffn_all + 2 * d,
                active_params=params + ffn_active + 2 * d,
                matmul_params=matmul + ffn_active,
            )
        )
    ffn = int(config.get("shared_intermediate_size") or 0)
    return _shape(config, spec, dims, LayerPlan(tuple(plan), other_params=d), ffn)


@plan_reader("falcon_h1")
def read_falcon_h1(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Falcon-H1: attention and a Mamba2 mixer in parallel in every layer, then a gated MLP;
    each layer caches K/V (grows) and a Mamba2 state (fixed)."""
    dims = _common(config)
    d = dims["hidden"]
    config = dict(config)
    if config.get("mamba_d_ssm") is None:
        config["mamba_d_ssm"] = int(config.get("mamba_expand") or 2) * d
    if config.get("mamba_d_head") in (None, "auto"):
        config["mamba_d_head"] = _i(config, "mamba_d_ssm", "head_dim") // _i(
            config, "mamba_n_heads", "number of attention heads"
        )
    mamba_params, mamba_matmul, state = _mamba_layer(
        config, d, MAMBA2_KEYS["falcon_h1"], gated_norm=_flag(config, "mamba_rms_norm")
    )
    attention = _attention_params(config, dims, "attention_bias")
    ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
    mlp = _gated_mlp(d, ffn) + ((2 * ffn + d) if _flag(config, "mlp_bias") else 0)
    kv = _attention_cache(dims["heads"], dims["kv_heads"], dims["head_dim"], dims["head_dim"], None)
    cache = LayerCache(
        kind="full",
        kv_vectors=kv.kv_vectors,
        state_values=state.state_values,
        state_fp32_values=state.state_fp32_values,
        attention_flops_per_key=kv.attention_flops_per_key,
        heads=dims["heads"],
        kv_heads=dims["kv_heads"],
    )
    matmul = mamba_matmul + 2 * d * dims["head_dim"] * (dims["heads"] + dims["kv_heads"])
    layer = LayerCost(
        cache=cache,
        params=mamba_params + attention + mlp + 2 * d,
        active_params=mamba_params + attention + mlp + 2 * d,
        matmul_params=matmul + 3 * d * ffn,
    )
    plan = LayerPlan((layer,) * dims["layers"], other_params=d)
    return _shape(config, spec, dims, plan, ffn)


def _mamba1_layer(config: Mapping[str, Any], d: int) -> tuple[int, int, LayerCache]:
    """Jamba's Mamba (v1) mixer: ``in_proj`` d -> 2·E (E = expand·d), depthwise conv over E
    (K taps, optional bias), ``x_proj`` E -> R + 2N, ``dt_proj`` R -> E (bias), ``A_log``
    E·N, ``D`` E, ``out_proj`` E -> d, RMSNorms on dt (R), B and C (N each). Cache: conv
    window E·K at the activation dtype, SSM state E·N in float32."""
    inner = int(config.get("mamba_expand") or 2) * d
    state = _i(config, "mamba_d_state", "head_dim")
    kernel = _i(config, "mamba_d_conv", "head_dim")
    rank = config.get("mamba_dt_rank")
    rank = -(-d // 16) if rank in (None, "auto") else _i(config, "mamba_dt_rank", "head_dim")
    matmul = d * 2 * inner + inner * (rank + 2 * state) + rank * inner + inner * d
    params = matmul + inner * kernel + inner + inner * state + inner + rank + 2 * state
    if _flag(config, "mamba_conv_bias", True):
        params += inner
    if _flag(config, "mamba_proj_bias"):
        params += 2 * inner + d
    cache = LayerCache(
        kind="state",
        state_values=inner * kernel,
        state_fp32_values=inner * state,
        heads=0,
    )
    return params, matmul, cache


@plan_reader("jamba")
def read_jamba(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Jamba: attention on layers ``i % attn_layer_period == attn_layer_offset``, Mamba
    elsewhere; MoE FFN on ``i % expert_layer_period == expert_layer_offset``, dense else."""
    dims = _common(config)
    layers, d = dims["layers"], dims["hidden"]
    attn_period = int(config.get("attn_layer_period") or 8)
    attn_offset = int(config.get("attn_layer_offset") or 0)
    moe_period = int(config.get("expert_layer_period") or 2)
    moe_offset = int(config.get("expert_layer_offset") or 0)
    ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
    experts = _i(config, "num_experts", "number of experts")
    top_k = _i(config, "num_experts_per_tok", "experts per token")
    plan = []
    for i in range(layers):
        if i % attn_period == attn_offset:
            params = matmul = 2 * d * dims["head_dim"] * (dims["heads"] + dims["kv_heads"])
            cache = _attention_cache(
                dims["heads"], dims["kv_heads"], dims["head_dim"], dims["head_dim"], None
            )
        else:
            params, matmul, cache = _mamba1_layer(config, d)
        if experts > 1 and i % moe_period == moe_offset:
            all_p = experts * d + experts * _gated_mlp(d, ffn)
            active = experts * d + top_k * _gated_mlp(d, ffn)
        else:
            all_p = active = _gated_mlp(d, ffn)
        plan.append(
            LayerCost(
                cache=cache,
                params=params + all_p + 2 * d,
                active_params=params + active + 2 * d,
                matmul_params=matmul + active,
            )
        )
    return _shape(config, spec, dims, LayerPlan(tuple(plan), other_params=d), ffn)


# ------------------------------------------------------------ Gemma 4 (per-layer geometry)


def _gemma4_layer_types(config: Mapping[str, Any], layers: int) -> list[str]:
    types = layer_types(config, layers) or [
        "sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)
    ]
    return [*types[:-1], "full_attention"]  # transformers forces the last layer to full


def _gemma4_moe(config: Mapping[str, Any], d: int) -> tuple[int, int]:
    """(all, active) of Gemma 4's MoE block (beside the dense MLP): router (projection,
    scale, per-expert scale), gated experts, three extra RMSNorms."""
    experts = _i(config, "num_experts", "number of experts")
    top_k = _i(config, "top_k_experts", "experts per token")
    expert = _gated_mlp(d, _i(config, "moe_intermediate_size", "expert FFN size"))
    fixed = d * experts + d + experts + 3 * d
    return fixed + experts * expert, fixed + top_k * expert


@plan_reader("gemma4")
def read_gemma4(config: Mapping[str, Any], spec: FamilySpec) -> ModelShape:
    """Gemma 4 text decoder: sliding layers (``head_dim``, ``num_key_value_heads``) and full
    layers (``global_head_dim``; ``num_global_key_value_heads`` and no v_proj when
    ``attention_k_eq_v``); the last ``num_kv_shared_layers`` layers reuse earlier layers' KV
    (no k/v projections, nothing cached); optional per-layer input embeddings and MoE block."""
    dims = _common(config)
    layers, d, h = dims["layers"], dims["hidden"], dims["heads"]
    types = _gemma4_layer_types(config, layers)
    shared_from = layers - int(config.get("num_kv_shared_layers") or 0)
    k_eq_v = _flag(config, "attention_k_eq_v")
    global_kv = config.get("num_global_key_value_heads")
    global_dim = _i(config, "global_head_dim", "head_dim")
    window = (
        _i(config, "sliding_window", "sliding window") if "sliding_attention" in types else None
    )
    ffn = _i(config, "intermediate_size", "FFN (intermediate) size")
    per_layer = int(config.get("hidden_size_per_layer_input") or 0)
    bias = _flag(config, "attention_bias")
    moe = _gemma4_moe(config, d) if _flag(config, "enable_moe_block") else (0, 0)
    # transformers serializes the full layers' geometry as per_layer_config {"i": {...}}
    overrides = config.get("per_layer_config")
    overrides = overrides if isinstance(overrides, Mapping) else None
    plan = []
    for i, kind in enumerate(types):
        full = kind == "full_attention"
        dh = global_dim if full else dims["head_dim"]
        kv = dims["kv_heads"]
        if full and k_eq_v and global_kv is not None:
            kv = _i(config, "num_global_key_value_heads", "number of KV heads")
        if overrides is not None:
            layer = overrides.get(str(i)) or overrides.get(i) or {}
            dh = _i({**dims, **layer}, "head_dim", "head_dim")
            kv = _i({"num_key_value_heads": dims["kv_heads"], **layer}, "num_key_value_heads")
        shared = i >= shared_from
        projections = d * h * dh + h * dh * d  # q, o
        if not shared:
            projections += d * kv * dh * (1 if (full and k_eq_v) else 2)
        params = projections + dh + (0 if shared else dh)  # q_norm, k_norm
        if bias:
            params += h * dh + d + (0 if shared else kv * dh * (1 if (full and k_eq_v) else 2))
        wide = _flag(config, "use_double_wide_mlp") and shared
        mlp = _gated_mlp(d, ffn * (2 if wide else 1))
        extra = 2 * d * per_layer + d if per_layer else 0
        cache = (
            LayerCache(kind="none", attention_flops_per_key=4 * h * dh, heads=h)
            if shared
            else _attention_cache(h, kv, dh, dh, None if full else window)
        )
        if shared:  # attends to the reused cache: same FLOPs, nothing new cached
            cache = LayerCache(kind="none", heads=h)
        plan.append(
            LayerCost(
                cache=cache,
                params=params + mlp + moe[0] + 4 * d + extra,
                active_params=params + mlp + moe[1] + 4 * d + extra,
                matmul_params=projections + mlp + moe[1] + 2 * d * per_layer,
            )
        )
    other = d
    if per_layer:
        per_vocab = _i(config, "vocab_size_per_layer_input", "vocabulary size")
        other += per_vocab * layers * per_layer + d * layers * per_layer + per_layer
    notes = ("per-layer input embeddings counted as non-embedding parameters",) if per_layer else ()
    plan_obj = LayerPlan(tuple(plan), other_params=other, notes=notes)
    return _shape(config, spec, dims, plan_obj, ffn)
