"""KV-cache bytes from the formulas equal the bytes of a real DynamicCache after a forward."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.cost import kv_cache_bytes, read_config
from tests.cost.tiny_families import ALL_TINY, tiny_estimator_model


def _cache_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        for tensor in (layer.keys, layer.values):
            total += tensor.numel() * tensor.element_size()
    return total


@pytest.mark.parametrize("name", ALL_TINY)
@pytest.mark.parametrize("tokens", [13])
def test_kv_bytes_equal_dynamic_cache(name: str, tokens: int) -> None:
    model = tiny_estimator_model(name)
    shape = read_config(model.config.to_dict())
    ids = torch.randint(3, 100, (2, tokens))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    measured = _cache_bytes(out.past_key_values)
    predicted = kv_cache_bytes(shape, tokens, "fp32", batch=2)
    assert measured == predicted
    if any(w is not None and w < tokens for w in shape.windows):
        full = kv_cache_bytes(
            shape.__class__(**{**shape.__dict__, "layer_windows": ()}), tokens, "fp32", batch=2
        )
        assert measured < full  # the window really capped something
