"""GPT-2 with decoupled-head grouped-query attention.

Only the attention differs from ``GPT2LMHeadModel``: ``c_attn`` is a Conv1D ``d -> (n_h + 2 n_kv)
d_h`` (columns q | k | v), ``c_proj`` a Conv1D ``n_h d_h -> d``, and the cache holds ``n_kv``
heads of ``d_h``. With ``n_kv = n_h`` and ``d_h = d / n_h`` the weights are GPT-2's own.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.gpt2 import modeling_gpt2
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from ._gqa_common import attend, attention_class_swapped, repeat_kv
from .configuration_gpt2_gqa import GPT2GQAConfig


class GPT2GQAAttention(GPT2Attention):
    """GPT-2 self-attention with ``num_key_value_heads`` KV heads of ``head_dim``."""

    def __init__(self, config, is_cross_attention=False, layer_idx=None):
        if is_cross_attention:
            raise ValueError("gpt2_gqa has no cross-attention")
        nn.Module.__init__(self)
        self.config = config
        self.layer_idx = layer_idx
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        self.q_size = self.num_heads * self.head_dim
        self.kv_size = self.num_key_value_heads * self.head_dim
        self.split_size = self.embed_dim
        self.scale_attn_weights = config.scale_attn_weights
        self.scale_attn_by_inverse_layer_idx = config.scale_attn_by_inverse_layer_idx
        self.reorder_and_upcast_attn = config.reorder_and_upcast_attn
        self.is_cross_attention = False
        self.is_causal = True
        self.scaling = self.head_dim**-0.5 if self.scale_attn_weights else 1.0
        if self.scale_attn_by_inverse_layer_idx:
            self.scaling /= float(self.layer_idx + 1)
        self.c_attn = Conv1D(self.q_size + 2 * self.kv_size, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.q_size)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cache=None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = False,
        **kwargs,
    ):
        if encoder_hidden_states is not None:
            raise ValueError("gpt2_gqa has no cross-attention")
        query, key, value = self.c_attn(hidden_states).split(
            [self.q_size, self.kv_size, self.kv_size], dim=2
        )
        shape = (*hidden_states.shape[:-1], -1, self.head_dim)
        query = query.view(shape).transpose(1, 2)  # [B, n_h, S, d_h]
        key = key.view(shape).transpose(1, 2)  # [B, n_kv, S, d_h]
        value = value.view(shape).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        if self.config._attn_implementation == "eager" and self.reorder_and_upcast_attn:
            output, weights = self._upcast_and_reordered_attn(
                query,
                repeat_kv(key, self.num_key_value_groups),
                repeat_kv(value, self.num_key_value_groups),
                attention_mask,
            )
            output = output.reshape(*output.shape[:2], -1).contiguous()
        else:
            output, weights = attend(
                self,
                query,
                key,
                value,
                attention_mask,
                scaling=self.scaling,
                dropout=self.attn_dropout.p if self.training else 0.0,
                **kwargs,
            )
        output = self.resid_dropout(self.c_proj(output))
        return output, weights


class GPT2GQAForCausalLM(GPT2LMHeadModel):
    """``GPT2LMHeadModel`` whose blocks use :class:`GPT2GQAAttention`."""

    config_class = GPT2GQAConfig
    _supports_flash_attn = False
    _supports_flex_attn = False

    def __init__(self, config: GPT2GQAConfig):
        with attention_class_swapped(vars(modeling_gpt2), ["GPT2Attention"], GPT2GQAAttention):
            super().__init__(config)


__all__ = ["GPT2GQAAttention", "GPT2GQAForCausalLM"]
