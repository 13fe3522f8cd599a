"""Head-geometry validation shared by the decoupled-head GQA configs (pure Python)."""

from __future__ import annotations


def check_gqa_geometry(heads: int, kv_heads: int, head_dim: int, *, rope: bool) -> None:
    """Raise ValueError for an impossible head geometry."""
    for name, value in (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if heads % kv_heads:
        raise ValueError(f"heads={heads} is not divisible by kv_heads={kv_heads}")
    if rope and head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even with rotary embeddings")
