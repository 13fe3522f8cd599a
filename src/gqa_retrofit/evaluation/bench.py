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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._markdown import markdown_table
from .._progress import progress
from ..devices import (
    check_cast_finite,
    check_dtype_on_device,
    checkpoint_dtype,
    dtype_name,
    peak_memory_bytes,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
    synchronize,
    torch_dtype,
)
from ..errors import ConfigError


@dataclass
class _LoadedModel:
    name: str
    model: Any  # a transformers PreTrainedModel
    config_dict: dict[str, Any]
    dtype: str  # canonical name (devices.DTYPE_NAMES)
    device: Any  # torch.device the model's weights are on
    peak_bytes: dict[int, int] = field(default_factory=dict)  # context -> peak device bytes


def load_for_bench(
    name: str,
    *,
    dtype: str = "auto",
    device: Any = "auto",
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> Any:
    """Load a causal LM for benchmarking (eval mode, ``dtype``, on ``device``).

    Args:
        name: model directory or Hub id.
        dtype: a name from :mod:`gqa_retrofit.devices` (``auto``: the checkpoint's dtype).
        device: ``auto`` (the accelerator when present), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Raises:
        ModelSourceError: ``name`` is neither a model directory nor a resolvable Hub id.
        ConfigError: unknown or unavailable device, unknown dtype, a dtype the device cannot
            compute in, or one too narrow for the checkpoint's values.
    """
    import json

    from transformers import AutoModelForCausalLM

    from ..conversion.streaming import require_safetensors
    from ..patching import register_custom_types
    from ..sources import resolve_checkpoint_dir

    register_custom_types()  # the tool's own *_gqa types load without trust_remote_code
    target = resolve_device(device)
    path = resolve_checkpoint_dir(name, revision=revision)
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    source = checkpoint_dtype(config)
    chosen = resolve_dtype(dtype, checkpoint=source, device=target)
    require_safetensors(path)  # pickled .bin weights are never loaded
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype(chosen), trust_remote_code=trust_remote_code, use_safetensors=True
    )
    check_cast_finite(model.named_parameters(), chosen, source=source)
    return model.to(target).eval()


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


def _prefill(model: Any, ids: Any, device: Any) -> tuple[Any, Any, float]:
    """Prefill ``ids`` into a fresh ``DynamicCache``; returns (cache, first new token, seconds).

    The clock stops only after the device has finished (:func:`~gqa_retrofit.devices.synchronize`):
    accelerator kernels run asynchronously.
    """
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        synchronize(device)
        start = time.perf_counter()
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1:].argmax(dim=-1)
        synchronize(device)
        seconds = time.perf_counter() - start
    return cache, token, seconds


def _decode(model: Any, cache: Any, token: Any, new_tokens: int, device: Any) -> float:
    """Greedy-decode ``new_tokens`` steps from ``token`` into ``cache``; returns seconds."""
    import torch

    with torch.inference_mode():
        synchronize(device)
        start = time.perf_counter()
        for _ in range(new_tokens):
            out = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1:].argmax(dim=-1)
        synchronize(device)
        return time.perf_counter() - start


def _croppable(cache: Any) -> bool:
    """True when every layer keeps all positions (no sliding window), so crop restores it."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _check_arguments(
    models: Sequence[Any],
    *,
    contexts: Sequence[int],
    new_tokens: int,
    batch: int,
    repeats: int,
    prefill_repeats: int | None,
    names: Sequence[str] | None,
    dtype: str,
) -> None:
    """Refuse bad sizes and names before any model loads.

    Raises:
        ConfigError: the first bad value, named.
    """
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
    dtype_name(dtype, allow_auto=True)


def _load_models(
    models: Sequence[Any],
    names: Sequence[str] | None,
    *,
    dtype: str,
    device: Any,
    trust_remote_code: bool,
) -> list[_LoadedModel]:
    """Load the named models (``dtype`` on ``device``); loaded ones keep their dtype and device."""
    loaded: list[_LoadedModel] = []
    for i, item in enumerate(models):
        if isinstance(item, (str, Path)):
            model = load_for_bench(
                str(item), dtype=dtype, device=device, trust_remote_code=trust_remote_code
            )
            label = names[i] if names else str(item)
        else:
            model = item.eval()
            label = names[i] if names else f"model{i}"
        weight = next(model.parameters())
        check_dtype_on_device(weight.dtype, weight.device)
        loaded.append(
            _LoadedModel(
                label, model, model.config.to_dict(), dtype_name(weight.dtype), weight.device
            )
        )
    return loaded


def _warm_up(loaded: Sequence[_LoadedModel], batch: int) -> None:
    """One short untimed run per model: first-call costs (kernel selection, allocator growth,
    lazy initialisation) stay out of the timings."""
    import torch

    for entry in loaded:
        ids = torch.randint(0, entry.model.config.vocab_size, (batch, 8)).to(entry.device)
        cache, token, _ = _prefill(entry.model, ids, entry.device)
        _decode(entry.model, cache, token, 2, entry.device)


# (context, model index) -> per repeat: (prefill seconds or None when reused, decode seconds,
# cache bytes after the decode)
_Runs = dict[tuple[int, int], list[tuple[float | None, float, int]]]


def _measure_context(
    loaded: Sequence[_LoadedModel],
    context: int,
    runs: _Runs,
    *,
    new_tokens: int,
    batch: int,
    repeats: int,
    seed: int,
    prefill_repeats: int | None,
    bar: Any,
) -> None:
    """All repeats of one context length, models interleaved, into ``runs``."""
    import torch

    kept: dict[int, tuple[Any, Any]] = {}  # model index -> (prefilled cache, first token)
    for repeat in range(repeats):
        # Alternate the order each repeat so no model always runs first after a switch.
        order = range(len(loaded)) if repeat % 2 == 0 else reversed(range(len(loaded)))
        for index in order:
            entry = loaded[index]
            reset_peak_memory(entry.device)
            prefill: float | None = None
            if index in kept and (prefill_repeats is None or repeat >= prefill_repeats):
                cache, token = kept[index]
                cache.crop(-new_tokens)  # back to the prompt: the same state as a prefill
            else:
                generator = torch.Generator().manual_seed(seed + repeat)
                ids = torch.randint(
                    0, entry.model.config.vocab_size, (batch, context), generator=generator
                ).to(entry.device)
                cache, token, prefill = _prefill(entry.model, ids, entry.device)
                if prefill_repeats is not None and _croppable(cache):
                    kept[index] = (cache, token)
            decode = _decode(entry.model, cache, token, new_tokens, entry.device)
            runs.setdefault((context, index), []).append((prefill, decode, cache_bytes(cache)))
            peak = peak_memory_bytes(entry.device)
            if peak is not None:
                entry.peak_bytes[context] = max(peak, entry.peak_bytes.get(context, 0))
            bar.update(1)
    kept.clear()


def _result_row(
    entry: _LoadedModel,
    context: int,
    measured: list[tuple[float | None, float, int]],
    *,
    new_tokens: int,
    batch: int,
    repeats: int,
) -> dict[str, Any]:
    """One result dict (see :func:`benchmark_decode`) from the runs of one model and context.

    Raises:
        ConfigError: the measured cache size differs between repeats.
    """
    import torch

    sizes = {size for _, _, size in measured}
    if len(sizes) != 1:
        raise ConfigError(f"cache size of {entry.name} varies between repeats: {sizes}")
    prefills = [p for p, _, _ in measured if p is not None]
    speed = [batch * new_tokens / d for _, d, _ in measured]
    cache_tokens = context + new_tokens
    prefill_stats = _spread(prefills)
    speed_stats = _spread(speed)
    return {
        "model": entry.name,
        "model_type": entry.config_dict.get("model_type"),
        "context": context,
        "new_tokens": new_tokens,
        "batch": batch,
        "dtype": entry.dtype,
        "device": str(entry.device),
        "cache_tokens": cache_tokens,
        "kv_cache_bytes": sizes.pop(),
        "predicted_kv_cache_bytes": predicted_cache_bytes(
            entry.config_dict, tokens=cache_tokens, batch=batch, dtype=entry.dtype
        ),
        "prefill_seconds": prefill_stats["median"],
        "prefill_seconds_min": prefill_stats["min"],
        "prefill_seconds_max": prefill_stats["max"],
        "decode_tokens_per_second": speed_stats["median"],
        "decode_tokens_per_second_min": speed_stats["min"],
        "decode_tokens_per_second_max": speed_stats["max"],
        "prefill_seconds_runs": prefills,
        "decode_tokens_per_second_runs": speed,
        "peak_device_memory_bytes": entry.peak_bytes.get(context),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def benchmark_decode(
    models: Sequence[Any],
    *,
    contexts: Sequence[int] = (2048, 8192),
    new_tokens: int = 64,
    batch: int = 1,
    repeats: int = 5,
    dtype: str = "auto",
    device: Any = "auto",
    seed: int = 0,
    warmup: bool = True,
    prefill_repeats: int | None = None,
    trust_remote_code: bool = False,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark greedy decoding of several models side by side.

    Args:
        models: model directories or Hub ids, or already loaded transformers causal LMs
            (then ``names`` labels them; the model's own dtype and device are used).
        contexts: prompt lengths ``T`` (random token ids) to prefill before decoding.
        new_tokens: greedy decode steps timed after the prefill.
        batch: sequences decoded together.
        repeats: runs per model and context; models are interleaved run by run.
        dtype: for models loaded here, a name from :mod:`gqa_retrofit.devices` (``bf16``,
            ``fp16``, ``fp32``, aliases alike; ``auto``: each checkpoint's own dtype).
        device: for models loaded here: ``auto`` (the accelerator when present), ``cpu``,
            ``cuda``, ``cuda:N`` or ``mps``. Timings synchronise the device; on CUDA each row
            also reports the peak device memory of its runs.
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
        ``new_tokens``, ``batch``, ``dtype``, ``device``, ``cache_tokens``, ``kv_cache_bytes``
        (measured), ``predicted_kv_cache_bytes``, ``prefill_seconds`` and
        ``decode_tokens_per_second`` (medians), their ``*_min``/``*_max`` and per-run lists,
        ``peak_device_memory_bytes`` (None on the CPU) and ``threads``.

    Raises:
        ConfigError: empty model list, non-positive sizes, unknown dtype or device, a dtype
            the device cannot compute in, or a measured cache size that differs between
            repeats.
        ModelSourceError: a model cannot be resolved.
    """
    _check_arguments(
        models,
        contexts=contexts,
        new_tokens=new_tokens,
        batch=batch,
        repeats=repeats,
        prefill_repeats=prefill_repeats,
        names=names,
        dtype=dtype,
    )
    loaded = _load_models(
        models, names, dtype=dtype, device=device, trust_remote_code=trust_remote_code
    )
    if warmup:
        _warm_up(loaded, batch)
    runs: _Runs = {}
    bar = progress(total=len(contexts) * repeats * len(loaded), desc="bench", unit="run")
    for context in contexts:
        _measure_context(
            loaded,
            context,
            runs,
            new_tokens=new_tokens,
            batch=batch,
            repeats=repeats,
            seed=seed,
            prefill_repeats=prefill_repeats,
            bar=bar,
        )
    bar.close()
    return [
        _result_row(
            entry,
            context,
            runs[(context, index)],
            new_tokens=new_tokens,
            batch=batch,
            repeats=repeats,
        )
        for context in contexts
        for index, entry in enumerate(loaded)
    ]


def results_to_markdown(results: list[dict[str, Any]]) -> str:
    """The results of :func:`benchmark_decode` as a table, one row per model and context."""
    rows = [
        [
            row["model"],
            row["context"],
            f"{row['kv_cache_bytes']:,}",
            f"{row['predicted_kv_cache_bytes']:,}",
            f"{row['prefill_seconds']:.3f}",
            f"{row['decode_tokens_per_second']:.2f} "
            f"[{row['decode_tokens_per_second_min']:.2f}-{row['decode_tokens_per_second_max']:.2f}]",
        ]
        for row in results
    ]
    headers = ["model", "context", "KV bytes", "predicted", "prefill s", "decode tok/s"]
    return markdown_table(headers, rows, "lrrrrr")
