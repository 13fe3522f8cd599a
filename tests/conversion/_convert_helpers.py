"""Shared helpers of the converter tests: in-memory reference conversion, file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.arch.layout import (
    attention_prefix,
    attention_tensor_names,
    merge_attention,
    split_attention,
)
from gqa_retrofit.conversion.pooling import HeadTarget, get_pooling
from gqa_retrofit.patching import patch_config


def reference_conversion(
    model: Any, kv_heads: int, *, method: str = "mean", dtype: torch.dtype | None = None
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Convert a live model's state dict in memory, layer by layer: the oracle for convert."""
    config = model.config
    spec = get_family(config.model_type)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    new_config = patch_config(config, kv_heads=kv_heads)
    new_spec = get_family(new_config.model_type)  # e.g. gpt2 -> gpt2_gqa
    relative = attention_tensor_names(spec, config)
    i = 0
    while all(attention_prefix(spec, i) + r in state for r in relative):
        prefix = attention_prefix(spec, i)
        src_dtype = state[prefix + relative[0]].dtype
        weights = split_attention(spec, config, {r: state.pop(prefix + r) for r in relative})
        result = get_pooling(method).fn(weights.to(torch.float32), HeadTarget(kv_heads), None)
        out_prefix = attention_prefix(new_spec, i)
        for rel, tensor in merge_attention(new_spec, new_config, result.weights).items():
            state[out_prefix + rel] = tensor.to(dtype or src_dtype)
        i += 1
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return new_config, state


def tree_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (to prove a source was not touched)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
