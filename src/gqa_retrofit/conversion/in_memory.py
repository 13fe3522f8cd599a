"""Calibrated conversion of a checkpoint into an in-memory model (for evaluation and tests).

The checkpoint writer (:mod:`gqa_retrofit.conversion.convert`) streams to disk; this helper runs
the same per-layer loop (:class:`CalibrationSession` + a registered method) and returns a live
transformers model with the converted attention, so quality can be measured without writing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._progress import progress
from ..arch import get_family
from ..arch.canonical import AttentionWeights
from .calibration import (
    CalibrationSession,
    _get,
    _module_path,
    attention_weights,
    build_attention,
)
from .convert import DEFAULT_CALIBRATION_TOKENS
from .pooling import HeadTarget, get_pooling


@dataclass
class InMemoryConversion:
    """A converted live model and what each layer's method recorded."""

    model: Any
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    calibration_fingerprint: str | None = None
    calibration_record: dict[str, Any] | None = None  # gqa_retrofit.data.DataRecord.to_dict()


def convert_in_memory(
    src_dir: str | Path,
    target: HeadTarget,
    method: str,
    text_paths: Sequence[str | Path] = (),
    *,
    tokens: int = DEFAULT_CALIBRATION_TOKENS,
    seq_len: int = 512,
    tokenizer: Any | None = None,
) -> InMemoryConversion:
    """Convert the checkpoint in ``src_dir`` with ``method`` and return the converted model.

    Args:
        src_dir: local checkpoint directory of any supported family and layout.
        target: head counts after conversion.
        method: a registered pooling method name.
        text_paths: calibration data (needed by data-aware methods): files, globs, datasets.
        tokens: calibration tokens.
        seq_len: calibration window length.
        tokenizer: tokenizer to use instead of the checkpoint's.

    Raises:
        ConfigError: unknown method or invalid target.
        DataError: calibration text missing or too short.
    """
    from transformers import AutoModelForCausalLM

    pooling = get_pooling(method)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32).eval()
    config = model.config
    spec = get_family(config.model_type)
    layers_path, attn_name = _module_path(spec)
    layers = _get(model, layers_path)
    session = None
    if pooling.needs_calibration:
        session = CalibrationSession(
            src_dir, config, text_paths, tokens=tokens, seq_len=seq_len, tokenizer=tokenizer
        )
    converted: list[AttentionWeights] = []
    records = []
    for i in progress(range(len(layers)), desc=f"converting ({method})", unit="layer"):
        source = attention_weights(spec, config, _get(layers[i], attn_name))
        calibration = session.layer(i, source) if session is not None else None
        result = pooling.fn(source, target, calibration)
        if session is not None:
            session.advance(i, result.weights)
        converted.append(result.weights)
        records.append(result.record)
    for i, weights in enumerate(converted):
        old = _get(layers[i], attn_name)
        setattr(layers[i], attn_name, build_attention(spec, old, config, weights, layer_idx=i))
    if spec.decoupled != "custom":
        # The model's sub-modules share this config object: update it in place. (Custom
        # ``<family>_gqa`` attention modules hold their own patched config.)
        config.num_attention_heads = converted[0].heads
        config.num_key_value_heads = converted[0].kv_heads
        config.head_dim = converted[0].head_dim
    return InMemoryConversion(
        model=model,
        records=records,
        seconds=time.perf_counter() - start,
        calibration_fingerprint=None if session is None else session.fingerprint,
        calibration_record=None if session is None else session.data_record.to_dict(),
    )
