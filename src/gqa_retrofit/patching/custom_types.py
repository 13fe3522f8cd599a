"""Registration of the custom decoupled-head GQA model types with the transformers Auto classes.

Importing :mod:`gqa_retrofit.patching` registers them, after which ``AutoConfig`` and
``AutoModelForCausalLM`` (``from_pretrained`` / ``from_config``) resolve ``gpt2_gqa``,
``gpt_neox_gqa``, ``opt_gqa`` and ``falcon_gqa`` without ``trust_remote_code``. Their classes are
also marked for ``register_for_auto_class``, so ``save_pretrained`` writes ``auto_map`` and copies
the defining files: the checkpoint then loads with ``trust_remote_code=True`` anywhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

_PACKAGE = "gqa_retrofit.patching.models"


@dataclass(frozen=True)
class CustomType:
    """One custom model type: where its config and causal-LM classes live."""

    model_type: str
    base_type: str
    config_class: str
    model_class: str

    def load(self) -> tuple[Any, Any]:
        """The ``(config_class, model_class)`` pair (imports the modeling module)."""
        config_module = importlib.import_module(f"{_PACKAGE}.configuration_{self.model_type}")
        model_module = importlib.import_module(f"{_PACKAGE}.modeling_{self.model_type}")
        return getattr(config_module, self.config_class), getattr(model_module, self.model_class)


CUSTOM_TYPES: dict[str, CustomType] = {
    t.model_type: t
    for t in [
        CustomType("gpt2_gqa", "gpt2", "GPT2GQAConfig", "GPT2GQAForCausalLM"),
        CustomType("gpt_neox_gqa", "gpt_neox", "GPTNeoXGQAConfig", "GPTNeoXGQAForCausalLM"),
        CustomType("opt_gqa", "opt", "OPTGQAConfig", "OPTGQAForCausalLM"),
        CustomType("falcon_gqa", "falcon", "FalconGQAConfig", "FalconGQAForCausalLM"),
        CustomType("gemma2_gqa", "gemma2", "Gemma2GQAConfig", "Gemma2GQAForCausalLM"),
        CustomType(
            "gemma3_text_gqa", "gemma3_text", "Gemma3TextGQAConfig", "Gemma3TextGQAForCausalLM"
        ),
    ]
}

_registered = False


def register_custom_types() -> None:
    """Register every custom type with ``AutoConfig`` / ``AutoModelForCausalLM`` (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    for custom in CUSTOM_TYPES.values():
        config_class, model_class = custom.load()
        AutoConfig.register(custom.model_type, config_class, exist_ok=True)
        AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForCausalLM")
    _registered = True


def custom_classes(model_type: str) -> tuple[Any, Any]:
    """``(config_class, model_class)`` of a registered custom type."""
    register_custom_types()
    return CUSTOM_TYPES[model_type].load()
