"""Decoupled-head grouped-query attention: configs, live-model patching, custom model types.

Importing this package registers the custom types (``gpt2_gqa``, ``gpt_neox_gqa``, ``opt_gqa``,
``falcon_gqa``, ``gemma2_gqa``, ``gemma3_text_gqa``) with the transformers Auto classes.
"""

from __future__ import annotations

from .config import patch_config, patchable_families
from .custom_types import CUSTOM_TYPES, register_custom_types
from .model import PatchReport, patch_model, unpatch

register_custom_types()

__all__ = [
    "CUSTOM_TYPES",
    "PatchReport",
    "patch_config",
    "patch_model",
    "patchable_families",
    "register_custom_types",
    "unpatch",
]
