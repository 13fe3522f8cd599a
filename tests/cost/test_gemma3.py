"""The estimator on a second real family: Gemma 3 270M (gemma3_text, 4 q / 1 kv heads of 256,
sliding window 512 on 5 of 6 layers, vocab 262,144), exact against the real cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gqa_retrofit.cost import estimate

pytestmark = pytest.mark.integration


def test_params_and_geometry_equal_the_checkpoint(gemma3_model: Path) -> None:
    from safetensors import safe_open

    stored = 0
    with safe_open(gemma3_model / "model.safetensors", "pt") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
            numel = 1
            for size in f.get_slice(name).get_shape():
                numel *= size
            stored += numel
    report = estimate(gemma3_model)
    assert report.model_type == "gemma3_text"
    assert report.params.total == stored == 268_098_176
    attention = report.attention_dict()
    assert {k: attention[k] for k in ("layers", "heads", "kv_heads", "head_dim", "kind")} == {
        "layers": 18,
        "heads": 4,
        "kv_heads": 1,
        "head_dim": 256,
        "kind": "mqa",
    }
    assert (attention["sliding_layers"], attention["sliding_window"]) == (15, 512)
    # K and V, 1 head of 256, 18 layers, 4 bytes (fp32): the uncapped per-token figure
    assert estimate(gemma3_model, dtype="fp32").kv_cache_bytes_per_token == 2 * 256 * 18 * 4


def test_kv_cache_bytes_equal_the_real_cache_within_and_past_the_window(
    gemma3_model: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gemma3_model, dtype=torch.float32).eval()
    for tokens in (24, 700):  # 700 > sliding window 512: 15 of 18 layers keep only a window
        report = estimate(gemma3_model, contexts=(tokens,), dtype="fp32")
        ids = torch.randint(10, 1000, (1, tokens))
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
        measured = sum(
            t.numel() * t.element_size()
            for layer in out.past_key_values.layers
            for t in (layer.keys, layer.values)
        )
        assert measured == report.per_context[0].kv_cache_bytes
    assert measured == 19_998_720 < 36_864 * 700  # the window saves memory past 512 tokens
