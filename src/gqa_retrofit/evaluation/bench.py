"""Decode benchmark: prefill time, decode tokens/s and measured KV-cache bytes, side by side.

For each context length ``T`` and each repeat, every model runs in turn (interleaved, so slow
drifts of a shared machine hit all models alike):

1. prefill: one forward pass over ``T`` random token ids into a fresh ``DynamicCache``
   (only the last position's logits are computed), which also yields the first new token;
2. decode: ``new_tokens`` greedy steps, one token per forward pass, each feeding the previous
   step's argmax back in.

The cache then holds ``T + new_tokens`` positions (fewer on sliding-window layers); its bytes
are summed from the key and value tensors themselves and set next to the estimator's
prediction for the same geometry, context and dtype (``gqa_retrofit.cost.estimate``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._progress import progress
from ..errors import ConfigError

# --dtype names accepted here and by the estimator, with their torch names.
DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class _LoadedModel:
    name: str
    model: Any  # a transformers PreTrainedModel
    config_dict: dict[str, Any]


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


def load_for_bench(
    name: str, *, dtype: str = "fp32", trust_remote_code: bool = False, revision: str | None = None
) -> Any:
    """Load a causal LM for benchmarking (eval mode, ``dtype``, SDPA where the family has it).

    Raises:
        ModelSourceError: ``name`` is neither a model directory nor a resolvable Hub id.
        ConfigError: ``dtype`` is unknown.
    """
    from transformers import AutoModelForCausalLM

    from ..hub.resolve import resolve_checkpoint_dir
    from ..patching import register_custom_types

    register_custom_types()  # the tool's own *_gqa types load without trust_remote_code
    torch_dtype = _torch_dtype(dtype)
    path = resolve_checkpoint_dir(name, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype, trust_remote_code=trust_remote_code
    )
    return model.eval()


def cache_bytes(cache: Any) -> int:
    """Bytes held by the key and value tensors of a transformers cache (all layers)."""
    total = 0
    for layer in cache.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if tensor is not None:
                total += tensor.numel() * tensor.element_size()
    return total


def predicted_cache_bytes(config: dict[str, Any], *, tokens: int, batch: int, dtype: str) -> int:
    """The estimator's KV-cache bytes for ``tokens`` cached positions (sliding windows applied)."""
    from ..cost import estimate

    report = estimate(config, contexts=(tokens,), dtype=dtype, batch=batch).to_dict()
    return int(report["per_context"][0]["kv_cache_bytes"])


def _prefill(model: Any, ids: Any) -> tuple[Any, Any, float]:
    """Prefill ``ids`` into a fresh ``DynamicCache``; returns (cache, first new token, seconds)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1:].argmax(dim=-1)
        seconds = time.perf_counter() - start
    return cache, token, seconds


def _decode(model: Any, cache: Any, token: Any, new_tokens: int) -> float:
    """Greedy-decode ``new_tokens`` steps from ``token`` into ``cache``; returns seconds."""
    import torch

    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(new_tokens):
            out = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1:].argmax(dim=-1)
        return time.perf_counter() - start


def _croppable(cache: Any) -> bool:
    """True when every layer keeps all positions (no sliding window), so crop restores it."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _run_once(model: Any, ids: Any, new_tokens: int) -> tuple[float, float, int]:
    """Prefill ``ids`` then decode ``new_tokens`` greedy steps.

    Returns:
        (prefill seconds, decode seconds, measured cache bytes at the end).
    """
    cache, token, prefill = _prefill(model, ids)
    decode = _decode(model, cache, token, new_tokens)
    return prefill, decode, cache_bytes(cache)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def benchmark_decode(
    models: Sequence[Any],
    *,
    contexts: Sequence[int] = (2048, 8192),
    new_tokens: int = 64,
    batch: int = 1,
    repeats: int = 5,
    dtype: str = "fp32",
    seed: int = 0,
    warmup: bool = True,
    prefill_repeats: int | None = None,
    trust_remote_code: bool = False,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark greedy decoding of several models side by side.

    Args:
        models: model directories or Hub ids, or already loaded transformers causal LMs
            (then ``names`` labels them; the model's own dtype is used).
        contexts: prompt lengths ``T`` (random token ids) to prefill before decoding.
        new_tokens: greedy decode steps timed after the prefill.
        batch: sequences decoded together.
        repeats: runs per model and context; models are interleaved run by run.
        dtype: ``fp32``, ``bf16`` or ``fp16`` for models loaded here (and for the prediction).
        seed: seed of the random prompts (the same prompt for every model of equal vocab).
        warmup: one short untimed run per model before timing.
        prefill_repeats: prefill afresh in only the first this many repeats (None: all); later
            repeats crop the cache back to the prompt and time the decode again (models with
            sliding-window layers always prefill afresh). Saves the long prefills at large
            contexts on slow machines.
        trust_remote_code: passed to ``from_pretrained`` for custom model types.
        names: labels for the ``model`` field, one per model.

    Returns:
        One dict per context and model (in that order) with ``model``, ``context``,
        ``new_tokens``, ``batch``, ``dtype``, ``cache_tokens``, ``kv_cache_bytes`` (measured),
        ``predicted_kv_cache_bytes``, ``prefill_seconds`` and ``decode_tokens_per_second``
        (medians), their ``*_min``/``*_max`` and per-run lists, and ``threads``.

    Raises:
        ConfigError: empty model list, non-positive sizes, unknown dtype, or a measured cache
            size that differs between repeats.
        ModelSourceError: a model cannot be resolved.
    """
    import torch

    if not models:
        raise ConfigError("no models given: pass at least one model directory or Hub id")
    for label, value in (("new_tokens", new_tokens), ("batch", batch), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"{label} must be a positive integer, got {value}")
    if prefill_repeats is not None and prefill_repeats < 1:
        raise ConfigError(f"prefill_repeats must be a positive integer, got {prefill_repeats}")
    if not contexts or any(c < 1 for c in contexts):
        raise ConfigError(f"contexts must be positive integers, got {list(contexts)}")
    if names is not None and len(names) != len(models):
        raise ConfigError(f"{len(names)} names given for {len(models)} models")
    _torch_dtype(dtype)

    loaded: list[_LoadedModel] = []
    for i, item in enumerate(models):
        if isinstance(item, (str, Path)):
            model = load_for_bench(str(item), dtype=dtype, trust_remote_code=trust_remote_code)
            label = names[i] if names else str(item)
            model_dtype = dtype
        else:
            model = item.eval()
            label = names[i] if names else f"model{i}"
            model_dtype = {v: k for k, v in DTYPES.items()}.get(
                str(next(model.parameters()).dtype).removeprefix("torch."), dtype
            )
        config_dict = model.config.to_dict()
        config_dict["_bench_dtype"] = model_dtype
        loaded.append(_LoadedModel(label, model, config_dict))

    if warmup:
        for entry in loaded:
            ids = torch.randint(0, entry.model.config.vocab_size, (batch, 8))
            _run_once(entry.model, ids, 2)

    # (context, model index) -> per-repeat prefill seconds (None when reused), decode seconds,
    # cache bytes after the decode
    runs: dict[tuple[int, int], list[tuple[float | None, float, int]]] = {}
    bar = progress(total=len(contexts) * repeats * len(loaded), desc="bench", unit="run")
    for context in contexts:
        kept: dict[int, tuple[Any, Any]] = {}  # model index -> (prefilled cache, first token)
        for repeat in range(repeats):
            # Alternate the order each repeat so no model always runs first after a switch.
            order = range(len(loaded)) if repeat % 2 == 0 else reversed(range(len(loaded)))
            for index in order:
                model = loaded[index].model
                prefill: float | None = None
                if index in kept and (prefill_repeats is None or repeat >= prefill_repeats):
                    cache, token = kept[index]
                    cache.crop(-new_tokens)  # back to the prompt: the same state as a prefill
                else:
                    generator = torch.Generator().manual_seed(seed + repeat)
                    ids = torch.randint(
                        0, model.config.vocab_size, (batch, context), generator=generator
                    )
                    cache, token, prefill = _prefill(model, ids)
                    if prefill_repeats is not None and _croppable(cache):
                        kept[index] = (cache, token)
                decode = _decode(model, cache, token, new_tokens)
                runs.setdefault((context, index), []).append((prefill, decode, cache_bytes(cache)))
                bar.update(1)
        kept.clear()
    bar.close()

    results: list[dict[str, Any]] = []
    for context in contexts:
        for index, entry in enumerate(loaded):
            measured = runs[(context, index)]
            sizes = {size for _, _, size in measured}
            if len(sizes) != 1:
                raise ConfigError(f"cache size of {entry.name} varies between repeats: {sizes}")
            prefills = [p for p, _, _ in measured if p is not None]
            speed = [batch * new_tokens / d for _, d, _ in measured]
            config = {k: v for k, v in entry.config_dict.items() if k != "_bench_dtype"}
            model_dtype = entry.config_dict["_bench_dtype"]
            cache_tokens = context + new_tokens
            prefill_stats = _spread(prefills)
            speed_stats = _spread(speed)
            results.append(
                {
                    "model": entry.name,
                    "model_type": config.get("model_type"),
                    "context": context,
                    "new_tokens": new_tokens,
                    "batch": batch,
                    "dtype": model_dtype,
                    "cache_tokens": cache_tokens,
                    "kv_cache_bytes": sizes.pop(),
                    "predicted_kv_cache_bytes": predicted_cache_bytes(
                        config, tokens=cache_tokens, batch=batch, dtype=model_dtype
                    ),
                    "prefill_seconds": prefill_stats["median"],
                    "prefill_seconds_min": prefill_stats["min"],
                    "prefill_seconds_max": prefill_stats["max"],
                    "decode_tokens_per_second": speed_stats["median"],
                    "decode_tokens_per_second_min": speed_stats["min"],
                    "decode_tokens_per_second_max": speed_stats["max"],
                    "prefill_seconds_runs": prefills,
                    "decode_tokens_per_second_runs": speed,
                    "repeats": repeats,
                    "threads": torch.get_num_threads(),
                }
            )
    return results
