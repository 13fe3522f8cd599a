# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""OPT with decoupled-head grouped-query attention: adds ``num_key_value_heads`` and
``head_dim`` (``num_attention_heads * head_dim`` need not equal ``hidden_size``)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import OPTConfig

from ._gqa_geometry import check_gqa_geometry


@strict
class OPTGQAConfig(OPTConfig):
    model_type = "opt_gqa"

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
            self.num_attention_heads, self.num_key_value_heads, self.head_dim, rope=False
        )


__all__ = ["OPTGQAConfig"]
