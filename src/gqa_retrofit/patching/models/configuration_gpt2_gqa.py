# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""GPT-2 with decoupled-head grouped-query attention: adds ``num_key_value_heads`` and
``head_dim`` (``num_attention_heads * head_dim`` need not equal ``n_embd``)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from ._gqa_geometry import check_gqa_geometry


@strict
class GPT2GQAConfig(GPT2Config):
    model_type = "gpt2_gqa"

    num_key_value_heads: int | None = None
    head_dim: int | None = None

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.n_head
        if self.head_dim is None:
            self.head_dim = self.n_embd // self.n_head
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Part of ``@strict`` validation: a geometry the attention can build."""
        check_gqa_geometry(self.n_head, self.num_key_value_heads, self.head_dim, rope=False)
        if self.add_cross_attention:
            raise ValueError("gpt2_gqa has no cross-attention: add_cross_attention must be False")


__all__ = ["GPT2GQAConfig"]
