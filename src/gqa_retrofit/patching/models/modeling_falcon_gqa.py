# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""Falcon with real grouped-query attention and decoupled heads.

Only the attention differs from ``FalconForCausalLM``: ``query_key_value`` is ``d -> (n_h +
2 n_kv) d_h`` with rows per KV group (q_1..q_g, k, v), ``dense`` is ``n_h d_h -> d``, and the
cache holds ``n_kv`` heads of ``d_h`` (Falcon's own ``new_decoder_architecture`` broadcasts K/V
to every query head before caching them). Rotary embeddings only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.models.falcon import modeling_falcon
from transformers.models.falcon.modeling_falcon import (
    FalconAttention,
    FalconForCausalLM,
    FalconLinear,
    apply_rotary_pos_emb,
)

from ._gqa_common import attend, attention_class_swapped, split_grouped_qkv
from .configuration_falcon_gqa import FalconGQAConfig


class FalconGQAAttention(FalconAttention):
    """Falcon attention caching ``num_kv_heads`` KV heads of ``head_dim``."""

    def __init__(self, config, layer_idx=None):
        nn.Module.__init__(self)
        self.config = config
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = self.num_key_value_heads = config.num_kv_heads
        self.num_key_value_groups = self.num_heads // self.num_kv_heads
        self.head_dim = config.head_dim
        self.split_size = self.hidden_size
        self.hidden_dropout = config.hidden_dropout
        self.max_position_embeddings = config.max_position_embeddings
        self.is_causal = True
        self.inv_norm_factor = 1.0 / math.sqrt(self.head_dim)
        self.beta = self.inv_norm_factor
        self.new_decoder_architecture = config.new_decoder_architecture
        self.multi_query = config.multi_query
        out = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.query_key_value = FalconLinear(self.hidden_size, out, bias=config.bias)
        self.dense = FalconLinear(
            self.num_heads * self.head_dim, self.hidden_size, bias=config.bias
        )
        self.attention_dropout = nn.Dropout(config.attention_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        alibi: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_ids: torch.LongTensor | None = None,
        layer_past=None,
        use_cache: bool = False,
        output_attentions: bool = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ):
        if alibi is not None:
            raise ValueError("falcon_gqa supports rotary embeddings only (alibi=False)")
        query, key, value = split_grouped_qkv(
            self.query_key_value(hidden_states), self.num_heads, self.num_kv_heads, self.head_dim
        )
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if layer_past is not None:
            key, value = layer_past.update(key, value, self.layer_idx)
        # Falcon applies no attention dropout on its rotary path.
        output, weights = attend(
            self, query, key, value, attention_mask, scaling=self.inv_norm_factor, dropout=0.0
        )
        return self.dense(output), weights


class FalconGQAForCausalLM(FalconForCausalLM):
    """``FalconForCausalLM`` whose decoder layers use :class:`FalconGQAAttention`."""

    config_class = FalconGQAConfig
    _supports_flash_attn = False
    _supports_flex_attn = False

    def __init__(self, config: FalconGQAConfig):
        table = modeling_falcon.FALCON_ATTENTION_CLASSES
        with attention_class_swapped(table, list(table), FalconGQAAttention):
            super().__init__(config)


__all__ = ["FalconGQAAttention", "FalconGQAForCausalLM"]
