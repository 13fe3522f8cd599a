# mypy: disable-error-code="arg-type,operator,union-attr,misc"
# (transformers style: optional config fields are filled in __post_init__)
"""Falcon with real grouped-query attention and decoupled heads: ``num_kv_heads`` KV heads are
cached (not broadcast to every query head as Falcon's ``new_decoder_architecture`` does), and
``head_dim`` is a field instead of ``hidden_size // num_attention_heads``. The fused
``query_key_value`` rows are laid out per KV group as (q_1..q_g, k, v), which covers Falcon's
grouped (40B), multi-query (7B, ``num_kv_heads=1``) and MHA layouts. Rotary only (no ALiBi)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import FalconConfig

from ._gqa_geometry import check_gqa_geometry


@strict
class FalconGQAConfig(FalconConfig):
    model_type = "falcon_gqa"
    attribute_map = {**FalconConfig.attribute_map, "num_key_value_heads": "num_kv_heads"}  # noqa: RUF012

    head_dim: int | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads

    def validate_architecture(self):
        """Part of ``@strict`` validation: a geometry the attention can build."""
        check_gqa_geometry(self.num_attention_heads, self.num_kv_heads, self.head_dim, rope=True)
        if self.alibi:
            raise ValueError("falcon_gqa supports rotary embeddings only: alibi must be False")


__all__ = ["FalconGQAConfig"]
