"""The embedded SmolLM2-135M (9 q / 3 kv heads): expansion to MHA and pooling back are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration


def test_smollm2_expanded_to_mha_and_pooled_back_keeps_perplexity(default_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity
    from gqa_retrofit.patching import patch_model

    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(default_model)
    text = default_corpus().test  # Persuasion

    def perplexity() -> float:
        return evaluate_perplexity(model, text, tokenizer=tokenizer, max_windows=4).perplexity

    reference = perplexity()
    assert 20 < reference < 60  # 36.6 over the first 16 windows (assets.md); 4 windows here
    expanded = patch_model(model, kv_heads=9)
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (9 * 64, 576)
    assert expanded.after.kv_heads == 9
    assert perplexity() == pytest.approx(reference, rel=1e-5)
    pooled = patch_model(model, kv_heads=3)
    assert pooled.after.kv_heads == 3
    assert perplexity() == pytest.approx(reference, rel=1e-5)
