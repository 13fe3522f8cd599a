"""Patching a second real family: Gemma 3 270M (1 KV head) expanded to MHA and pooled back is
exact (equal logits), and the decoupled-head modules keep the family's q/k norms and windows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration


def test_gemma3_expanded_to_mha_and_pooled_back_keeps_logits(gemma3_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from gqa_retrofit.conversion.live import patch_model, unpatch

    model = AutoModelForCausalLM.from_pretrained(gemma3_model, dtype=torch.float32).eval()
    ids = torch.randint(10, 20_000, (1, 40), generator=torch.Generator().manual_seed(0))

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=ids, use_cache=False).logits

    reference = logits()
    expanded = patch_model(model, kv_heads=4)
    assert expanded.after.kv_heads == 4 and expanded.before.kv_heads == 1
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (4 * 256, 640)
    torch.testing.assert_close(logits(), reference, rtol=1e-4, atol=1e-4)
    pooled = patch_model(model, kv_heads=1)
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (256, 640)
    torch.testing.assert_close(logits(), reference, rtol=1e-4, atol=1e-4)
    unpatch(model, pooled)
    unpatch(model, expanded)
    assert torch.equal(logits(), reference)
