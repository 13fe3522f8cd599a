"""Gemma3TextConfig without the ``hidden_size % num_attention_heads`` check.

transformers validates that divisibility even though the gemma3_text attention uses ``head_dim``
(``num_attention_heads * head_dim`` need not equal ``hidden_size``). This type differs from
``gemma3_text`` only by that check; the model classes and weights are unchanged.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import Gemma3TextConfig

from ._gqa_geometry import check_gqa_geometry


@strict
class Gemma3TextGQAConfig(Gemma3TextConfig):
    model_type = "gemma3_text_gqa"

    def validate_architecture(self):
        """Part of ``@strict`` validation: a geometry the attention can build."""
        check_gqa_geometry(
            self.num_attention_heads, self.num_key_value_heads, self.head_dim, rope=True
        )


__all__ = ["Gemma3TextGQAConfig"]
