"""Decode and prefill FLOPs from the formulas against torch's FlopCounterMode (eager attention)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gqa_retrofit.cost import decode_flops, prefill_flops, read_config
from tests.cost.tiny_families import ALL_TINY, tiny_estimator_model

TOKENS = 13  # past the tiny sliding windows (8)


def _count(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def _mla_reexpansion(shape, cached: int) -> int:
    """transformers' eager MLA re-expands every cached latent at each decode step."""
    m = shape.mla
    return (
        shape.layers
        * cached
        * 2
        * m.kv_lora_rank
        * shape.heads
        * (m.qk_nope_head_dim + m.v_head_dim)
    )


@pytest.mark.parametrize("name", ALL_TINY)
def test_prefill_flops_match_flop_counter(name: str) -> None:
    model = tiny_estimator_model(name)
    shape = read_config(model.config.to_dict())
    ids = torch.randint(3, 100, (1, TOKENS))
    measured = _count(lambda: model(input_ids=ids, use_cache=False))
    # eager kernels compute the full T x T score square (masked), so compare non-causal
    predicted = prefill_flops(shape, TOKENS, causal=False)
    assert measured == pytest.approx(predicted, rel=0.01)


@pytest.mark.parametrize("name", ALL_TINY)
def test_decode_flops_match_flop_counter(name: str) -> None:
    model = tiny_estimator_model(name)
    shape = read_config(model.config.to_dict())
    ids = torch.randint(3, 100, (1, TOKENS))
    with torch.no_grad():
        cache = model(input_ids=ids[:, :-1], use_cache=True).past_key_values
    measured = _count(lambda: model(input_ids=ids[:, -1:], cache=cache, use_cache=True))
    predicted = decode_flops(shape, TOKENS)
    if shape.mla is not None:
        predicted += _mla_reexpansion(shape, TOKENS - 1)
    assert measured == pytest.approx(predicted, rel=0.01)


@pytest.mark.parametrize("name", ["llama", "gemma2", "mistral-sliding", "mixtral"])
def test_causal_prefill_equals_sum_of_decode_steps(name: str) -> None:
    """Causal prefill FLOPs = decoding the same tokens one at a time, measured."""
    model = tiny_estimator_model(name)
    shape = read_config(model.config.to_dict())
    ids = torch.randint(3, 100, (1, TOKENS))
    total = 0
    cache = None
    for t in range(TOKENS):
        step = ids[:, t : t + 1]
        holder = {}

        def run(step=step, cache=cache, holder=holder) -> None:
            holder["out"] = model(input_ids=step, cache=cache, use_cache=True)

        total += _count(run)
        cache = holder["out"].past_key_values
    assert total == pytest.approx(prefill_flops(shape, TOKENS), rel=0.01)
    assert prefill_flops(shape, TOKENS) < prefill_flops(shape, TOKENS, causal=False)


@pytest.mark.parametrize("name", ["llama", "qwen3", "gpt2"])
def test_training_step_is_three_forwards(name: str) -> None:
    """Forward + backward measured = 3x the forward (the factor behind eqs. 10-11)."""
    from gqa_retrofit.cost import training_flops_per_token

    model = tiny_estimator_model(name)
    shape = read_config(model.config.to_dict())
    ids = torch.randint(3, 100, (1, TOKENS))
    counter = FlopCounterMode(display=False)
    with counter:
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)
    # eager kernels compute the full score square; the causal figure halves that term
    assert counter.get_total_flops() == pytest.approx(
        3 * prefill_flops(shape, TOKENS, causal=False), rel=0.01
    )
    assert training_flops_per_token(shape, TOKENS) == 3 * prefill_flops(shape, TOKENS) / TOKENS
