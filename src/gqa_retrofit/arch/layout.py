"""Bridge between each family's attention tensors and the canonical form.

:func:`split_attention` turns the tensors of one layer's attention module (named relative to
that module, e.g. ``"q_proj.weight"``, ``"query_key_value.bias"``, ``"c_attn.weight"``) into a
:class:`~gqa_retrofit.arch.canonical.AttentionWeights`; :func:`merge_attention` is its exact
inverse. Both are pure reshapes and concatenations, so ``merge(split(t)) == t`` bit for bit.

Layouts (``d`` hidden, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head size,
``g = n_h // n_kv`` query heads per KV head)::

    separate     q [n_h*d_h, d], k/v [n_kv*d_h, d], o [d, n_h*d_h]             llama, opt, ...
    fused        qkv [(n_h + 2*n_kv)*d_h, d], rows q | k | v                     phi3
    interleaved  qkv [(n_h + 2*n_kv)*d_h, d], per KV group rows (q_1..q_g, k, v)  gpt_neox, falcon
                 (with n_kv == n_h this is gpt_neox's per-head (q_i, k_i, v_i); with n_kv == 1
                 it is falcon's multi-query q... | k | v)
    conv1d       like fused but stored transposed: c_attn [d, (n_h + 2*n_kv)*d_h],
                 c_proj [n_h*d_h, d]                                             gpt2

Tensors outside the projections (qwen3 ``q_norm``/``k_norm``, rotary buffers) are not part of the
canonical form: callers keep them untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ConfigError
from .canonical import AttentionWeights
from .geometry import Geometry
from .spec import FamilySpec


def _first(config: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = getattr(config, key, None)
        if value is not None:
            return value
    return None


def attention_geometry(spec: FamilySpec, config: Any) -> Geometry:
    """The geometry (layers, hidden size, heads) ``config`` builds for family ``spec``.

    Families that ignore ``num_key_value_heads``/``head_dim`` (``spec.honours_*`` False) build
    MHA with ``d_h = d / n_h``; falcon's older layouts are resolved through ``spec.gqa_key`` /
    ``spec.mqa_key``.

    Raises:
        ConfigError: the config lacks the number of layers, hidden size or head count, or they
            are not positive.
    """
    layers = _first(config, spec.layers_keys)
    if layers is None:
        raise ConfigError(f"config of {spec.model_type!r} has no number of layers")
    hidden = _first(config, spec.hidden_keys)
    heads = _first(config, spec.heads_keys)
    if not isinstance(hidden, int) or not isinstance(heads, int) or hidden <= 0 or heads <= 0:
        raise ConfigError(
            f"config of {spec.model_type!r} needs positive hidden size and head count, got "
            f"hidden={hidden!r} heads={heads!r}"
        )
    head_dim = _first(config, ("head_dim",)) if spec.honours_head_dim else None
    if head_dim is None:
        head_dim = hidden // heads
    switched = spec.switched_kv_heads(lambda key, default: getattr(config, key, default), heads)
    if switched is not None:
        kv_heads = switched
    elif spec.honours_kv_heads:
        kv_heads = _first(config, spec.kv_heads_keys) or heads
    else:
        kv_heads = heads
    return Geometry(int(layers), int(hidden), int(heads), int(kv_heads), int(head_dim))


def attention_biases(spec: FamilySpec, config: Any) -> tuple[bool, bool]:
    """``(qkv_bias, o_bias)``: whether the q/k/v and output projections carry a bias."""

    def flag(key: str | None, default: bool) -> bool:
        if key is None:
            return default
        value = getattr(config, key, None)
        return default if value is None else bool(value)

    return flag(spec.qkv_bias_key, spec.qkv_bias_default), flag(
        spec.o_bias_key, spec.o_bias_default
    )


def attention_prefix(spec: FamilySpec, layer_idx: int) -> str:
    """Prefix of layer ``layer_idx``'s attention module, e.g. ``"model.layers.3.self_attn."``."""
    return spec.attn_path.format(i=layer_idx) + "."


def _qkv_name(spec: FamilySpec) -> str:
    if spec.qkv_name is None:
        raise ConfigError(
            f"family {spec.model_type!r} has layout {spec.qkv_layout!r} but no qkv_name"
        )
    return spec.qkv_name


def attention_tensor_names(spec: FamilySpec, config: Any) -> list[str]:
    """Names (relative to the attention module) of the tensors the canonical form covers."""
    qkv_bias, o_bias = attention_biases(spec, config)
    if spec.qkv_layout == "separate":
        projections = [spec.q_name, spec.k_name, spec.v_name]
    else:
        projections = [_qkv_name(spec)]
    names: list[str] = []
    for proj in projections:
        names.append(f"{proj}.weight")
        if qkv_bias:
            names.append(f"{proj}.bias")
    names.append(f"{spec.o_name}.weight")
    if o_bias:
        names.append(f"{spec.o_name}.bias")
    return names


def _get(tensors: Mapping[str, torch.Tensor], name: str, spec: FamilySpec) -> torch.Tensor:
    try:
        return tensors[name]
    except KeyError:
        raise ConfigError(
            f"attention tensor {name!r} missing for family {spec.model_type!r}; got: "
            + ", ".join(sorted(tensors))
        ) from None


def _check_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != shape:
        raise ConfigError(
            f"attention tensor {name!r} has shape {tuple(tensor.shape)}, expected {shape}"
        )


def _split_fused_rows(
    rows: torch.Tensor, layout: str, geo: Geometry
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split fused projection rows (last dims ``[rows, *rest]``) into q, k, v per head."""
    rest = tuple(rows.shape[1:])
    n_h, n_kv, d_h = geo.heads, geo.kv_heads, geo.head_dim
    if layout == "interleaved":
        grouped = rows.reshape(n_kv, n_h // n_kv + 2, d_h, *rest)
        q = grouped[:, :-2].reshape(n_h, d_h, *rest)
        return q, grouped[:, -2], grouped[:, -1]
    q, k, v = rows.split([geo.q_size, geo.kv_size, geo.kv_size], dim=0)
    return q.reshape(n_h, d_h, *rest), k.reshape(n_kv, d_h, *rest), v.reshape(n_kv, d_h, *rest)


def _merge_fused_rows(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str
) -> torch.Tensor:
    """Inverse of :func:`_split_fused_rows`: q ``[n_h, d_h, *rest]``, k/v ``[n_kv, d_h, *rest]``."""
    n_h, d_h = q.shape[0], q.shape[1]
    n_kv, rest = k.shape[0], tuple(q.shape[2:])
    if layout == "interleaved":
        grouped = torch.cat(
            [q.reshape(n_kv, n_h // n_kv, d_h, *rest), k.unsqueeze(1), v.unsqueeze(1)], dim=1
        )
        return grouped.reshape(-1, *rest).contiguous()
    return torch.cat(
        [q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)]
    ).contiguous()


def split_attention(
    spec: FamilySpec, config: Any, tensors: Mapping[str, torch.Tensor]
) -> AttentionWeights:
    """Canonical form of one layer's attention tensors.

    Args:
        spec: the family of the tensors.
        config: the model config they belong to (gives the head geometry).
        tensors: tensors named relative to the attention module (extra names are ignored).

    Raises:
        ConfigError: a tensor is missing or its shape does not match the config's geometry.
    """
    geo = attention_geometry(spec, config)
    if geo.heads % geo.kv_heads:
        raise ConfigError(f"{geo.heads} query heads are not divisible by {geo.kv_heads} KV heads")
    d, n_h, n_kv, d_h = geo.hidden, geo.heads, geo.kv_heads, geo.head_dim
    qkv_rows = geo.q_size + 2 * geo.kv_size
    o_name = f"{spec.o_name}.weight"
    o_bias = tensors.get(f"{spec.o_name}.bias")
    biases: tuple[torch.Tensor | None, ...]
    if spec.qkv_layout == "separate":
        q = _get(tensors, f"{spec.q_name}.weight", spec)
        k = _get(tensors, f"{spec.k_name}.weight", spec)
        v = _get(tensors, f"{spec.v_name}.weight", spec)
        for name, t, rows in (
            (spec.q_name, q, geo.q_size),
            (spec.k_name, k, geo.kv_size),
            (spec.v_name, v, geo.kv_size),
        ):
            _check_shape(f"{name}.weight", t, (rows, d))
        qkv = (q.reshape(n_h, d_h, d), k.reshape(n_kv, d_h, d), v.reshape(n_kv, d_h, d))
        raw = [tensors.get(f"{n}.bias") for n in (spec.q_name, spec.k_name, spec.v_name)]
        biases = tuple(
            None if b is None else b.reshape(heads, d_h)
            for b, heads in zip(raw, (n_h, n_kv, n_kv), strict=True)
        )
        o = _get(tensors, o_name, spec)
        _check_shape(o_name, o, (d, geo.q_size))
    else:
        name = _qkv_name(spec)
        fused = _get(tensors, f"{name}.weight", spec)
        fused_bias = tensors.get(f"{name}.bias")
        o = _get(tensors, o_name, spec)
        if spec.qkv_layout == "conv1d":
            _check_shape(f"{name}.weight", fused, (d, qkv_rows))
            _check_shape(o_name, o, (geo.q_size, d))
            fused, o = fused.t(), o.t()
        else:
            _check_shape(f"{name}.weight", fused, (qkv_rows, d))
            _check_shape(o_name, o, (d, geo.q_size))
        layout = "interleaved" if spec.qkv_layout == "interleaved" else "fused"
        qkv = _split_fused_rows(fused, layout, geo)
        biases = (None, None, None)
        if fused_bias is not None:
            biases = _split_fused_rows(fused_bias, layout, geo)
    weights = AttentionWeights(
        q=qkv[0],
        k=qkv[1],
        v=qkv[2],
        o=o.reshape(d, n_h, d_h),
        q_bias=biases[0],
        k_bias=biases[1],
        v_bias=biases[2],
        o_bias=o_bias,
    )
    try:
        weights.check()
    except ValueError as exc:
        raise ConfigError(f"attention tensors of {spec.model_type!r}: {exc}") from None
    return weights


def merge_attention(
    spec: FamilySpec, config: Any, weights: AttentionWeights
) -> dict[str, torch.Tensor]:
    """Family tensors (named relative to the attention module) of canonical ``weights``.

    ``config`` describes the target model; its geometry must match ``weights``.

    Raises:
        ConfigError: ``weights`` do not match the geometry ``config`` builds, or the family's
            layout cannot hold them.
    """
    geo = attention_geometry(spec, config)
    have = dataclasses.replace(
        geo,
        hidden=weights.hidden,
        heads=weights.heads,
        kv_heads=weights.kv_heads,
        head_dim=weights.head_dim,
    )
    if have != geo:
        raise ConfigError(
            f"weights of geometry {have} do not fit the {spec.model_type!r} config's {geo}"
        )
    d = weights.hidden
    out: dict[str, torch.Tensor] = {}
    o = weights.o.reshape(d, -1)
    biases = (weights.q_bias, weights.k_bias, weights.v_bias)
    if spec.qkv_layout == "separate":
        names = (spec.q_name, spec.k_name, spec.v_name)
        for name, w, b in zip(names, (weights.q, weights.k, weights.v), biases, strict=True):
            out[f"{name}.weight"] = w.reshape(-1, d).contiguous()
            if b is not None:
                out[f"{name}.bias"] = b.reshape(-1).contiguous()
        out[f"{spec.o_name}.weight"] = o.contiguous()
    else:
        name = _qkv_name(spec)
        layout = "interleaved" if spec.qkv_layout == "interleaved" else "fused"
        fused = _merge_fused_rows(weights.q, weights.k, weights.v, layout)
        if spec.qkv_layout == "conv1d":
            out[f"{name}.weight"] = fused.t().contiguous()
        else:
            out[f"{name}.weight"] = fused
        present = [b is not None for b in biases]
        if any(present):
            if not all(present):
                raise ConfigError(
                    f"family {spec.model_type!r} fuses q/k/v: biases must be all present or none"
                )
            out[f"{name}.bias"] = _merge_fused_rows(*biases, layout)  # type: ignore[arg-type]
        out[f"{spec.o_name}.weight"] = (o.t() if spec.qkv_layout == "conv1d" else o).contiguous()
    if weights.o_bias is not None:
        out[f"{spec.o_name}.bias"] = weights.o_bias.contiguous()
    return out


__all__ = [
    "attention_biases",
    "attention_geometry",
    "attention_prefix",
    "attention_tensor_names",
    "merge_attention",
    "split_attention",
]
