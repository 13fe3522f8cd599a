"""TEMPORARY stand-in for ``gqa_retrofit.patching.patch_config`` until it lands on main.

Handles native families only (sets the head counts on a copy of the config); families that need
the custom ``<family>_gqa`` types are refused. Delete this module once ``patch_config`` exists.
"""

from __future__ import annotations

import copy
from typing import Any

from ..arch import get_family
from ..errors import UnsupportedFamilyError

try:  # pragma: no cover - depends on what is merged
    from ..patching import patch_config  # type: ignore[attr-defined,unused-ignore]
except ImportError:

    def patch_config(  # type: ignore[misc,unused-ignore]
        config: Any,
        *,
        heads: int | None = None,
        kv_heads: int | None = None,
        head_dim: int | None = None,
    ) -> Any:
        spec = get_family(str(config.model_type))
        if spec.decoupled == "custom":
            raise UnsupportedFamilyError(
                f"converting {spec.model_type!r} needs the custom type {spec.decoupled_type!r} "
                "from gqa_retrofit.patching, which is not available yet"
            )
        new = copy.deepcopy(config)
        d_h = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        if heads is not None:
            new.num_attention_heads = heads
        if kv_heads is not None:
            new.num_key_value_heads = kv_heads
        new.head_dim = head_dim or d_h
        return new


__all__ = ["patch_config"]
