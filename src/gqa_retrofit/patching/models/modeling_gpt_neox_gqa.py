# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""GPT-NeoX with decoupled-head grouped-query attention.

Only the attention differs from ``GPTNeoXForCausalLM``: ``query_key_value`` is ``d -> (n_h +
2 n_kv) d_h`` with rows per KV group (q_1..q_g, k, v), ``dense`` is ``n_h d_h -> d``, and the
cache holds ``n_kv`` heads of ``d_h``. With ``n_kv = n_h`` and ``d_h = d / n_h`` the weights are
GPT-NeoX's own (its per-head (q_i, k_i, v_i) rows are groups of one).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.gpt_neox import modeling_gpt_neox
from transformers.models.gpt_neox.modeling_gpt_neox import (
    GPTNeoXAttention,
    GPTNeoXForCausalLM,
    apply_rotary_pos_emb,
)

from ._gqa_common import attend, attention_class_swapped, split_grouped_qkv
from .configuration_gpt_neox_gqa import GPTNeoXGQAConfig


class GPTNeoXGQAAttention(GPTNeoXAttention):
    """GPT-NeoX attention with ``num_key_value_heads`` KV heads of ``head_dim``."""

    def __init__(self, config, layer_idx=None):
        nn.Module.__init__(self)
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_size = self.head_dim = config.head_dim
        partial_rotary_factor = config.rope_parameters.get("partial_rotary_factor", 1.0)
        self.rotary_ndims = int(self.head_size * partial_rotary_factor)
        self.scaling = self.head_size**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        out = (self.num_heads + 2 * self.num_key_value_heads) * self.head_size
        self.query_key_value = nn.Linear(config.hidden_size, out, bias=config.attention_bias)
        self.dense = nn.Linear(
            self.num_heads * self.head_size, config.hidden_size, bias=config.attention_bias
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        layer_past=None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ):
        query, key, value = split_grouped_qkv(
            self.query_key_value(hidden_states),
            self.num_heads,
            self.num_key_value_heads,
            self.head_size,
        )
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if layer_past is not None:
            key, value = layer_past.update(key, value, self.layer_idx)
        output, weights = attend(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=0.0 if not self.training else self.attention_dropout,
            **kwargs,
        )
        return self.dense(output), weights


class GPTNeoXGQAForCausalLM(GPTNeoXForCausalLM):
    """``GPTNeoXForCausalLM`` whose layers use :class:`GPTNeoXGQAAttention`."""

    config_class = GPTNeoXGQAConfig
    _supports_flash_attn = False
    _supports_flex_attn = False

    def __init__(self, config: GPTNeoXGQAConfig):
        with attention_class_swapped(
            vars(modeling_gpt_neox), ["GPTNeoXAttention"], GPTNeoXGQAAttention
        ):
            super().__init__(config)


__all__ = ["GPTNeoXGQAAttention", "GPTNeoXGQAForCausalLM"]
