"""``Gemma2ForCausalLM`` for :class:`Gemma2GQAConfig` (no code change: only the config's
divisibility check is dropped)."""

from __future__ import annotations

from transformers.models.gemma2.modeling_gemma2 import Gemma2ForCausalLM

from .configuration_gemma2_gqa import Gemma2GQAConfig


class Gemma2GQAForCausalLM(Gemma2ForCausalLM):
    config_class = Gemma2GQAConfig


__all__ = ["Gemma2GQAForCausalLM"]
