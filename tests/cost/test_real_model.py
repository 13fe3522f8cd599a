"""The estimator on the embedded real model (SmolLM2-135M, llama, 9 q / 3 kv heads)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gqa_retrofit.cost import estimate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir():
    from gqa_retrofit.assets import default_model_dir

    return default_model_dir()


def test_params_equal_checkpoint_tensors(model_dir) -> None:
    from safetensors import safe_open

    stored = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(path, "pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                numel = 1
                for size in f.get_slice(name).get_shape():
                    numel *= size
                stored += numel
    report = estimate(model_dir)
    assert report.params.total == stored == 134_515_008


def test_kv_bytes_and_decode_flops_on_real_forward(model_dir) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tokens = 24
    report = estimate(model_dir, contexts=(tokens,), dtype="fp32")
    ids = torch.randint(10, 1000, (1, tokens))
    with torch.no_grad():
        cache = model(input_ids=ids[:, :-1], use_cache=True).past_key_values
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(input_ids=ids[:, -1:], cache=cache, use_cache=True)
    measured_kv = sum(
        t.numel() * t.element_size()
        for layer in out.past_key_values.layers
        for t in (layer.keys, layer.values)
    )
    assert measured_kv == report.per_context[0].kv_cache_bytes == 23_040 * 2 * tokens
    assert counter.get_total_flops() == pytest.approx(report.per_context[0].decode_flops, rel=0.01)
