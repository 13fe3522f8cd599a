"""Exactness of the data-aware methods on tiny real models (no approximation where none is due).

- each alignment step alone leaves the logits unchanged;
- pooling groups of identical heads is exact (an MHA model expanded from GQA, pooled back).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.conversion.calibration import attention_weights
from gqa_retrofit.conversion.in_memory import convert_in_memory
from gqa_retrofit.conversion.methods._features import sample_tokens
from gqa_retrofit.conversion.methods.alignment import align_keys, align_values
from gqa_retrofit.conversion.pooling import HeadTarget, contiguous_groups
from tests.conversion._calib import random_text, word_tokenizer
from tiny_models import tiny_model

SEQ = 32


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_text(tmp_path_factory.mktemp("text") / "calib.txt", 2000)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize("step", [align_keys, align_values])
def test_alignment_step_alone_leaves_logits_unchanged(model_type: str, step, text: Path) -> None:
    model = tiny_model(model_type, num_key_value_heads=4)
    if model_type == "qwen2":  # non-zero biases, so bias folding is exercised too
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_()
    spec = get_family(model_type)
    ids = torch.randint(3, 128, (2, SEQ), generator=torch.Generator().manual_seed(1))
    before = _logits(model, ids)
    x = torch.randn(256, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    groups = contiguous_groups(4, 2)
    from gqa_retrofit.conversion.calibration import build_attention

    changed = 0.0
    for i, layer in enumerate(model.model.layers):
        source = attention_weights(spec, model.config, layer.self_attn)
        aligned, record = step(source, groups, sample_tokens(x))
        changed += float((aligned.k - source.k).abs().max() + (aligned.v - source.v).abs().max())
        layer.self_attn = build_attention(spec, layer.self_attn, model.config, aligned, layer_idx=i)
        sims = next(r for key, r in record.items() if key.endswith("after"))
        base = next(r for key, r in record.items() if key.endswith("before"))
        assert all(a >= b - 1e-9 for a, b in zip(sims, base))
    assert changed > 1e-3  # the step really rotated the heads
    torch.testing.assert_close(_logits(model, ids), before, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["align-mean", "pca", "mean-refit", "pca-refit"])
def test_expanded_mha_pools_back_exactly(method: str, tmp_path: Path, text: Path) -> None:
    """GQA (2 KV) expanded to MHA (4 KV, heads repeated) and pooled back to 2 KV heads."""
    model = tiny_model("llama")
    ids = torch.randint(3, 128, (2, SEQ), generator=torch.Generator().manual_seed(1))
    reference = _logits(model, ids)
    for layer in model.model.layers:
        for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
            proj.weight = torch.nn.Parameter(
                proj.weight.view(2, 16, 64).repeat_interleave(2, dim=0).reshape(64, 64)
            )
    model.config.num_key_value_heads = 4
    for layer in model.model.layers:
        layer.self_attn.num_key_value_groups = 1
    torch.testing.assert_close(_logits(model, ids), reference)  # expansion itself is exact
    model.save_pretrained(tmp_path / "mha")
    result = convert_in_memory(
        tmp_path / "mha",
        HeadTarget(2),
        method,
        [text],
        tokens=4 * SEQ,
        seq_len=SEQ,
        tokenizer=word_tokenizer(),
    )
    assert result.model.config.num_key_value_heads == 2
    assert result.model.model.layers[0].self_attn.k_proj.weight.shape == (32, 64)
    torch.testing.assert_close(_logits(result.model, ids), reference, atol=1e-4, rtol=1e-4)
