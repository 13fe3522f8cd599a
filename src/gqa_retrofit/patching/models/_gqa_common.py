# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""Pieces shared by the decoupled-head GQA modeling files (torch/transformers only).

Notation: ``B`` batch, ``S`` sequence, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head size.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

_SWAP_LOCK = threading.RLock()


@contextlib.contextmanager
def attention_class_swapped(
    namespace: MutableMapping[str, Any], names: list[str], replacement: Any
) -> Iterator[None]:
    """Temporarily bind ``names`` in ``namespace`` (a module ``__dict__`` or a class table) to
    ``replacement``, so the original decoder layers construct our attention instead of theirs
    (their own constructor would reject ``n_h * d_h != d``). Everything else is built by the
    unchanged transformers code."""
    with _SWAP_LOCK:
        saved = {name: namespace[name] for name in names}
        try:
            for name in names:
                namespace[name] = replacement
            yield
        finally:
            namespace.update(saved)


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, n_kv, S, d_h] -> [B, n_kv * groups, S, d_h]``: each KV head repeated ``groups``
    times (contiguous groups, as transformers' ``repeat_kv``)."""
    if groups == 1:
        return states
    batch, kv_heads, seq, head_dim = states.shape
    expanded = states[:, :, None].expand(batch, kv_heads, groups, seq, head_dim)
    return expanded.reshape(batch, kv_heads * groups, seq, head_dim)


def eager_gqa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention.

    q ``[B, n_h, S, d_h]``, k/v ``[B, n_kv, S_kv, d_h]`` -> output ``[B, S, n_h, d_h]``.
    """
    groups = module.num_key_value_groups
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float,
    dropout: float,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dispatch through ``config._attn_implementation``.

    Returns the output ``[B, S, n_h * d_h]`` and the attention weights (None for sdpa).
    """
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(
        module.config._attn_implementation, eager_gqa_attention
    )
    output, weights = interface(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
    )
    return output.reshape(*output.shape[:2], -1).contiguous(), weights


def split_grouped_qkv(
    fused: torch.Tensor, heads: int, kv_heads: int, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``[B, S, (n_h + 2 n_kv) d_h]`` laid out per KV group as (q_1..q_g, k, v).

    Returns q ``[B, n_h, S, d_h]`` and k, v ``[B, n_kv, S, d_h]``. With ``n_kv == n_h`` this is
    gpt_neox's per-head (q_i, k_i, v_i); with ``n_kv == 1`` falcon's multi-query q... | k | v.
    """
    batch, seq, _ = fused.shape
    groups = heads // kv_heads
    grouped = fused.view(batch, seq, kv_heads, groups + 2, head_dim)
    query = grouped[:, :, :, :groups].reshape(batch, seq, heads, head_dim).transpose(1, 2)
    key = grouped[:, :, :, groups].transpose(1, 2)
    value = grouped[:, :, :, groups + 1].transpose(1, 2)
    return query, key, value
