# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""GPT-NeoX with decoupled-head grouped-query attention: adds ``num_key_value_heads`` and
``head_dim``. The fused ``query_key_value`` rows are laid out per KV group as (q_1..q_g, k, v),
which for ``num_key_value_heads == num_attention_heads`` is exactly GPT-NeoX's own layout."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import GPTNeoXConfig

from ._gqa_geometry import check_gqa_geometry


@strict
class GPTNeoXGQAConfig(GPTNeoXConfig):
    model_type = "gpt_neox_gqa"

    num_key_value_heads: int | None = None
    head_dim: int | None = None

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Part of ``@strict`` validation: a geometry the attention can build."""
        check_gqa_geometry(
            self.num_attention_heads, self.num_key_value_heads, self.head_dim, rope=True
        )
        rotary = int(self.head_dim * self.rope_parameters.get("partial_rotary_factor", 1.0))
        if rotary % 2:
            raise ValueError(
                f"rotary dims {rotary} (head_dim * partial_rotary_factor) must be even"
            )


__all__ = ["GPTNeoXGQAConfig"]
