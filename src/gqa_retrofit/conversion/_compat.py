"""TEMPORARY bridge to ``arch.layout`` and ``patching.patch_config`` until they land on main.

Only the separate-q/k/v layout (llama & co.) is handled here; delete this module as soon as
``gqa_retrofit.arch.layout`` and ``gqa_retrofit.patching.patch_config`` exist.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..arch.spec import FamilySpec
from ..errors import UnsupportedFamilyError
from .canonical import AttentionWeights

try:  # pragma: no cover - depends on what is merged
    from ..arch.layout import (  # type: ignore[import-not-found,unused-ignore]
        attention_prefix,
        attention_tensor_names,
        merge_attention,
        split_attention,
    )
except ImportError:

    def _geometry(config: Any, spec: FamilySpec) -> tuple[int, int, int, int]:
        d = int(config.hidden_size)
        n_h = int(config.num_attention_heads)
        n_kv = int(getattr(config, "num_key_value_heads", None) or n_h)
        d_h = int(getattr(config, "head_dim", None) or d // n_h)
        return d, n_h, n_kv, d_h

    def _check(spec: FamilySpec) -> None:
        if spec.qkv_layout != "separate" or spec.decoupled == "custom":
            raise UnsupportedFamilyError(
                f"layout {spec.qkv_layout!r} of {spec.model_type!r} is not supported yet"
            )

    def attention_prefix(spec: FamilySpec, layer_idx: int) -> str:
        return spec.attn_path.format(i=layer_idx) + "."

    def attention_tensor_names(spec: FamilySpec, config: Any) -> list[str]:
        _check(spec)
        names = [f"{p}.weight" for p in (spec.q_name, spec.k_name, spec.v_name, spec.o_name)]
        qkv_bias = getattr(config, spec.qkv_bias_key, None) if spec.qkv_bias_key else None
        o_bias = getattr(config, spec.o_bias_key, None) if spec.o_bias_key else None
        if spec.qkv_bias_default if qkv_bias is None else qkv_bias:
            names += [f"{p}.bias" for p in (spec.q_name, spec.k_name, spec.v_name)]
        if spec.o_bias_default if o_bias is None else o_bias:
            names.append(f"{spec.o_name}.bias")
        return names

    def split_attention(
        spec: FamilySpec, config: Any, tensors: dict[str, torch.Tensor]
    ) -> AttentionWeights:
        _check(spec)
        d, n_h, n_kv, d_h = _geometry(config, spec)

        def bias(name: str, heads: int) -> torch.Tensor | None:
            t = tensors.get(f"{name}.bias")
            return None if t is None else t.reshape(heads, d_h)

        return AttentionWeights(
            q=tensors[f"{spec.q_name}.weight"].reshape(n_h, d_h, d),
            k=tensors[f"{spec.k_name}.weight"].reshape(n_kv, d_h, d),
            v=tensors[f"{spec.v_name}.weight"].reshape(n_kv, d_h, d),
            o=tensors[f"{spec.o_name}.weight"].reshape(d, n_h, d_h),
            q_bias=bias(spec.q_name, n_h),
            k_bias=bias(spec.k_name, n_kv),
            v_bias=bias(spec.v_name, n_kv),
            o_bias=tensors.get(f"{spec.o_name}.bias"),
        )

    def merge_attention(
        spec: FamilySpec, config: Any, weights: AttentionWeights
    ) -> dict[str, torch.Tensor]:
        _check(spec)
        n_h, d_h, d = weights.q.shape
        out = {
            f"{spec.q_name}.weight": weights.q.reshape(n_h * d_h, d),
            f"{spec.k_name}.weight": weights.k.reshape(-1, d),
            f"{spec.v_name}.weight": weights.v.reshape(-1, d),
            f"{spec.o_name}.weight": weights.o.reshape(d, n_h * d_h),
        }
        for name, bias in (
            (spec.q_name, weights.q_bias),
            (spec.k_name, weights.k_bias),
            (spec.v_name, weights.v_bias),
        ):
            if bias is not None:
                out[f"{name}.bias"] = bias.reshape(-1)
        if weights.o_bias is not None:
            out[f"{spec.o_name}.bias"] = weights.o_bias
        return out


try:  # pragma: no cover - depends on what is merged
    from ..patching import patch_config  # type: ignore[attr-defined,unused-ignore]
except ImportError:

    def patch_config(
        config: Any,
        *,
        heads: int | None = None,
        kv_heads: int | None = None,
        head_dim: int | None = None,
    ) -> Any:
        new = copy.deepcopy(config)
        d_h = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        if heads is not None:
            new.num_attention_heads = heads
        if kv_heads is not None:
            new.num_key_value_heads = kv_heads
        new.head_dim = head_dim or d_h
        return new


__all__ = [
    "attention_prefix",
    "attention_tensor_names",
    "merge_attention",
    "patch_config",
    "split_attention",
]
