"""Exactness oracles for the 2025-2026 families: parameters equal a meta-device instantiation
of the transformers class; cache bytes (KV that grows with context plus fixed-size states)
equal the real cache tensors of a forward pass, at two lengths, so both the per-token slope
and the fixed part are checked."""

from __future__ import annotations

import functools

import pytest
import torch

from gqa_retrofit.cost import kv_cache_bytes, param_counts, read_config
from gqa_retrofit.cost.formulas import kv_bytes, state_bytes
from gqa_retrofit.cost.loading import meta_param_count
from tests.cost.shrunk_families import LONG, SHORT, SHRUNK, WINDOW, WRAPPERS, shrunk_config

NAMES = sorted(SHRUNK)


def cache_tensor_bytes(cache) -> int:
    """Bytes of every tensor a transformers cache holds (keys, values, indexer keys, conv and
    recurrent states); 0-dim bookkeeping tensors excluded."""
    total = 0
    for layer in cache.layers:
        for value in vars(layer).values():
            if isinstance(value, dict):
                value = list(value.values())
            tensors = value if isinstance(value, (list, tuple)) else [value]
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.dim() > 0:
                    total += t.numel() * t.element_size()
    return total


@functools.cache
def _model(name: str, dtype: torch.dtype):
    from transformers import AutoConfig

    torch.manual_seed(0)
    config = AutoConfig.for_model(**shrunk_config(name))
    model = _auto_class(name).from_config(
        config, attn_implementation="eager", experts_implementation="eager"
    )
    return model.to(dtype).eval()


def _measured(name: str, tokens: int, dtype: torch.dtype = torch.float32, batch: int = 2) -> int:
    model = _model(name, dtype)
    ids = torch.randint(3, 100, (batch, tokens))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    return cache_tensor_bytes(out.past_key_values)


def _auto_class(name: str):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if name in WRAPPERS else AutoModelForCausalLM


def _decoder_params(name: str) -> int:
    """Parameters of the text decoder (with its output head) of a multimodal wrapper, from
    the meta-device build of the whole model minus its vision tower."""
    from transformers import AutoConfig

    with torch.device("meta"):
        model = _auto_class(name).from_config(AutoConfig.for_model(**shrunk_config(name)))
    return sum(p.numel() for n, p in model.named_parameters() if ".visual." not in n)


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_meta_instantiation(name: str) -> None:
    config = shrunk_config(name)
    expected = _decoder_params(name) if name in WRAPPERS else meta_param_count(config)
    assert param_counts(read_config(config)).total == expected


@pytest.mark.parametrize("name", NAMES)
def test_cache_bytes_equal_real_cache_at_two_lengths(name: str) -> None:
    shape = read_config(shrunk_config(name))
    for tokens in (SHORT, LONG):
        assert _measured(name, tokens) == kv_cache_bytes(shape, tokens, "fp32", batch=2), tokens


@pytest.mark.parametrize(
    "name", ["qwen3_next", "qwen3_5_text", "nemotron_h", "granitemoehybrid", "falcon_h1", "jamba"]
)
def test_hybrid_state_is_fixed_and_float32_in_bf16(name: str) -> None:
    """In bf16 the conv window is bf16 and the recurrent/SSM state stays float32; the state
    part does not grow with context, the KV part grows by the full-attention layers only."""
    shape = read_config(shrunk_config(name))
    short = _measured(name, SHORT, torch.bfloat16, batch=1)
    long = _measured(name, LONG, torch.bfloat16, batch=1)
    assert short == kv_cache_bytes(shape, SHORT, "bf16")
    assert long == kv_cache_bytes(shape, LONG, "bf16")
    assert state_bytes(shape, "bf16") > 0
    assert long - short == kv_bytes(shape, LONG, "bf16") - kv_bytes(shape, SHORT, "bf16")


def test_windows_and_chunks_really_cap_the_cache() -> None:
    for name in ("gpt_oss", "mimo_v2_flash", "llama4_text"):
        shape = read_config(shrunk_config(name))
        capped = [layer for layer in shape_cache(shape) if layer.window == WINDOW]
        assert capped, name
        assert all(layer.cached_tokens(LONG) == WINDOW - 1 for layer in capped)


def shape_cache(shape):
    from gqa_retrofit.cost.layer_plan import cache_layers

    return cache_layers(shape)
