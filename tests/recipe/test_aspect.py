"""Aspect-ratio table, d/L interpolation and the binary search for L (Appendix B.1)."""

from __future__ import annotations

import math

import pytest
import torch

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.recipe.aspect import (
    PAPER_ASPECT_TABLE,
    aspect_ratio,
    ffn_size,
    model_shape,
    non_embedding_params,
    shape_for_params,
    table_shape,
)


@pytest.mark.parametrize(
    ("layers", "hidden", "heads", "kv_heads"),
    [(2, 192, 3, 1), (3, 256, 4, 2), (2, 128, 6, 3)],  # heads * 64 != hidden in each
)
def test_param_count_equals_a_real_decoupled_model(
    layers: int, hidden: int, heads: int, kv_heads: int
) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    vocab = 100
    config = AutoConfig.for_model(
        "mistral",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=ffn_size(hidden),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=64,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    assert non_embedding_params(layers, hidden, heads, kv_heads) == total - 2 * vocab * hidden


def test_ffn_size_is_8d_over_3_rounded_up_to_32() -> None:
    assert ffn_size(1536) == 4096
    assert ffn_size(1344) == 3584
    assert ffn_size(1000) == 2688  # 2666.7 -> 2688
    assert all(ffn_size(d) % 32 == 0 and ffn_size(d) >= 8 * d / 3 for d in range(64, 4096, 64))


def test_aspect_ratio_hits_table_rows_and_interpolates_in_log_size() -> None:
    for row in PAPER_ASPECT_TABLE:
        assert aspect_ratio(row.params) == pytest.approx(row.hidden / row.layers)
    low, high = PAPER_ASPECT_TABLE[7], PAPER_ASPECT_TABLE[8]  # 1.2B (36,1536), 1.8B (36,2048)
    middle = math.sqrt(low.params * high.params)
    assert aspect_ratio(middle) == pytest.approx((1536 / 36 + 2048 / 36) / 2)
    assert aspect_ratio(1e3) == 256 / 4  # clamped below the table
    assert aspect_ratio(1e15) == 8192 / 80  # clamped above


@pytest.mark.parametrize("params", [3e6, 4.7e7, 2.2e8, 9.9e8, 1.8e9, 7.5e9, 5e10])
@pytest.mark.parametrize(("heads", "kv_heads"), [(1, 1), (8, 2), (32, 8)])
def test_binary_search_equals_a_linear_scan_over_depths(
    params: float, heads: int, kv_heads: int
) -> None:
    shape = shape_for_params(params, heads, kv_heads)
    ratio = aspect_ratio(params)

    def width(layers: int) -> int:
        return max(64, 64 * round(ratio * layers / 64))

    scan = min(
        range(1, 400),
        key=lambda layers: (
            abs(non_embedding_params(layers, width(layers), heads, kv_heads) - params),
            layers,
        ),
    )
    assert shape.layers == scan
    assert shape.hidden == width(scan)
    assert shape.intermediate == ffn_size(shape.hidden)
    assert shape.non_embedding_params == non_embedding_params(scan, width(scan), heads, kv_heads)
    if params >= 2e8:  # depth steps are coarse for tiny models; fine for real sizes
        assert abs(shape.non_embedding_params / params - 1) < 0.1


def test_table_sizing_returns_the_nearest_paper_shape() -> None:
    assert (table_shape(1.8e9, 8, 1).layers, table_shape(1.8e9, 8, 1).hidden) == (36, 2048)
    assert (table_shape(1.3e9, 24, 8).layers, table_shape(1.3e9, 24, 8).hidden) == (36, 1536)
    assert model_shape(1.2e9, 24, 8, sizing="table") == table_shape(1.2e9, 24, 8)
    assert model_shape(1.2e9, 24, 8) == shape_for_params(1.2e9, 24, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: shape_for_params(1e9, 2, 4), "kv_heads 4 exceeds heads 2"),
        (lambda: shape_for_params(1e9, 0, 0), "invalid head geometry heads=0"),
        (lambda: shape_for_params(-5.0, 8, 2), "invalid parameter count -5.0"),
        (lambda: table_shape(0.0, 8, 2), "invalid parameter count 0.0"),
        (lambda: model_shape(1e9, 8, 2, sizing="cubic"), "invalid sizing 'cubic'"),
    ],
)
def test_invalid_inputs_are_refused(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
