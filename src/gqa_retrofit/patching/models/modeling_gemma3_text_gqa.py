"""``Gemma3ForCausalLM`` (the text-only model) for :class:`Gemma3TextGQAConfig` (no code change:
only the config's divisibility check is dropped)."""

from __future__ import annotations

from transformers.models.gemma3.modeling_gemma3 import Gemma3ForCausalLM

from .configuration_gemma3_text_gqa import Gemma3TextGQAConfig


class Gemma3TextGQAForCausalLM(Gemma3ForCausalLM):
    config_class = Gemma3TextGQAConfig


__all__ = ["Gemma3TextGQAForCausalLM"]
