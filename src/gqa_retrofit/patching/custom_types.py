"""Registration of the custom decoupled-head GQA model types with the transformers Auto classes.

The types are the rows of :data:`gqa_retrofit.arch.families.CUSTOM_TYPES`. Importing
:mod:`gqa_retrofit.patching` registers them, after which ``AutoConfig`` and
``AutoModelForCausalLM`` (``from_pretrained`` / ``from_config``) resolve each of them without
``trust_remote_code``. Their classes are
also marked for ``register_for_auto_class``, so ``save_pretrained`` writes ``auto_map`` and copies
the defining files: the checkpoint then loads with ``trust_remote_code=True`` anywhere.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..arch.families import CUSTOM_TYPES
from ..arch.spec import CustomType

_PACKAGE = "gqa_retrofit.patching.models"


def load_classes(custom: CustomType) -> tuple[Any, Any]:
    """The ``(config_class, model_class)`` pair of ``custom`` (imports its modeling module)."""
    config_module = importlib.import_module(f"{_PACKAGE}.configuration_{custom.model_type}")
    model_module = importlib.import_module(f"{_PACKAGE}.modeling_{custom.model_type}")
    return getattr(config_module, custom.config_class), getattr(model_module, custom.model_class)


_registered = False


def register_custom_types() -> None:
    """Register every custom type with ``AutoConfig`` / ``AutoModelForCausalLM`` (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    for custom in CUSTOM_TYPES.values():
        config_class, model_class = load_classes(custom)
        AutoConfig.register(custom.model_type, config_class, exist_ok=True)
        AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForCausalLM")
    _registered = True


def custom_classes(model_type: str) -> tuple[Any, Any]:
    """``(config_class, model_class)`` of a registered custom type."""
    register_custom_types()
    return load_classes(CUSTOM_TYPES[model_type])
