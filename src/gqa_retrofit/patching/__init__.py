"""Decoupled-head grouped-query attention configs and the custom model types that hold them.

This is the config half of patching, below :mod:`gqa_retrofit.conversion`: :func:`patch_config`
turns a config into its decoupled-head form, ``models/`` holds the custom types, and
:mod:`~gqa_retrofit.patching.save` writes a patched config. Patching a *live* model (which pools
weights) is :func:`gqa_retrofit.conversion.live.patch_model`, one layer up.

Importing this package registers the custom types (the rows of
:data:`gqa_retrofit.arch.families.CUSTOM_TYPES`) with the transformers Auto classes.
"""

from __future__ import annotations

from .config import patch_config, patchable_families
from .custom_types import CUSTOM_TYPES, register_custom_types

register_custom_types()

__all__ = [
    "CUSTOM_TYPES",
    "patch_config",
    "patchable_families",
    "register_custom_types",
]
