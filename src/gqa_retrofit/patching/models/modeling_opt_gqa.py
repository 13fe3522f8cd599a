"""OPT with decoupled-head grouped-query attention.

Only the attention differs from ``OPTForCausalLM``: ``q_proj`` is ``d -> n_h d_h``, ``k_proj`` and
``v_proj`` ``d -> n_kv d_h``, ``out_proj`` ``n_h d_h -> d``, and the cache holds ``n_kv`` heads of
``d_h``. With ``n_kv = n_h`` and ``d_h = d / n_h`` the weights are OPT's own.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.opt import modeling_opt
from transformers.models.opt.modeling_opt import OPTAttention, OPTForCausalLM

from ._gqa_common import attend, attention_class_swapped
from .configuration_opt_gqa import OPTGQAConfig


class OPTGQAAttention(OPTAttention):
    """OPT self-attention with ``num_key_value_heads`` KV heads of ``head_dim``."""

    def __init__(self, config, layer_idx=None, **kwargs):
        nn.Module.__init__(self)
        self.config = config
        self.layer_idx = layer_idx
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        self.dropout = config.attention_dropout
        self.enable_bias = config.enable_bias
        self.is_causal = True
        self.scaling = self.head_dim**-0.5
        q_size = self.num_heads * self.head_dim
        kv_size = self.num_key_value_heads * self.head_dim
        self.k_proj = nn.Linear(self.embed_dim, kv_size, bias=self.enable_bias)
        self.v_proj = nn.Linear(self.embed_dim, kv_size, bias=self.enable_bias)
        self.q_proj = nn.Linear(self.embed_dim, q_size, bias=self.enable_bias)
        self.out_proj = nn.Linear(q_size, self.embed_dim, bias=self.enable_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cache=None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        **kwargs,
    ):
        batch, seq, _ = hidden_states.shape
        # OPT scales the query before the product (and calls attention with scaling 1.0)
        query = self.q_proj(hidden_states) * self.scaling
        query = query.view(batch, seq, -1, self.head_dim).transpose(1, 2)  # [B, n_h, S, d_h]
        key = self.k_proj(hidden_states).view(batch, seq, -1, self.head_dim).transpose(1, 2)
        value = self.v_proj(hidden_states).view(batch, seq, -1, self.head_dim).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        output, weights = attend(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=1.0,
            dropout=0.0 if not self.training else self.dropout,
            **kwargs,
        )
        return self.out_proj(output), weights


class OPTGQAForCausalLM(OPTForCausalLM):
    """``OPTForCausalLM`` whose decoder layers use :class:`OPTGQAAttention`."""

    config_class = OPTGQAConfig
    _supports_flash_attn = False
    _supports_flex_attn = False

    def __init__(self, config: OPTGQAConfig):
        with attention_class_swapped(vars(modeling_opt), ["OPTAttention"], OPTGQAAttention):
            super().__init__(config)


__all__ = ["OPTGQAAttention", "OPTGQAForCausalLM"]
