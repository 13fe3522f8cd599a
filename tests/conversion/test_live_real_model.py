"""The embedded SmolLM2-135M (9 q / 3 kv heads): expansion to MHA and pooling back are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration


def test_smollm2_expanded_to_mha_and_pooled_back_keeps_perplexity(default_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.conversion.live import patch_model
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(default_model)
    text = default_corpus().test  # Persuasion

    def perplexity() -> float:
        # 2 windows of 256 tokens keep this cheap; the full 16 x 512 reference run (36.6) is in
        # benchmarks/patching_smollm2.py
        result = evaluate_perplexity(model, text, tokenizer=tokenizer, max_windows=2, seq_len=256)
        return result.perplexity

    reference = perplexity()
    assert 10 < reference < 100  # a sane language-model perplexity on Austen
    expanded = patch_model(model, kv_heads=9)
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (9 * 64, 576)
    assert expanded.after.kv_heads == 9
    assert perplexity() == pytest.approx(reference, rel=1e-5)
    pooled = patch_model(model, kv_heads=3)
    assert pooled.after.kv_heads == 3
    assert perplexity() == pytest.approx(reference, rel=1e-5)
