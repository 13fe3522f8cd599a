"""The probes on the real embedded model at 1K: sound on the original, an identity conversion and a
model whose attention is disabled."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gqa_retrofit.evaluation.retrieval import RetrievalOptions, evaluate_retrieval

pytestmark = pytest.mark.integration

OPTIONS = RetrievalOptions(
    passkey_lengths=(1024,), passkey_depths=(0.0, 1.0), passkey_trials=1, copy_trials=2
)


def test_original_identity_and_no_attention(default_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gqa_retrofit.conversion.in_memory import convert_in_memory
    from gqa_retrofit.conversion.pooling import HeadTarget

    tokenizer = AutoTokenizer.from_pretrained(default_model)
    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.float32).eval()
    original = evaluate_retrieval(model, tokenizer, OPTIONS)
    assert original.passkey is not None and original.copy is not None
    assert original.passkey.success_rates() == {1024: 1.0}
    # induction heads at work: the second copy is far below chance and the first copy
    assert original.copy.second_copy_loss < 0.3 * original.copy.chance_loss
    assert original.copy.relative_loss < 0.3

    # 3 -> 3 KV heads with mean pooling changes nothing
    same = convert_in_memory(default_model, HeadTarget(kv_heads=3), "mean").model
    identity = evaluate_retrieval(same, tokenizer, OPTIONS)
    assert identity.copy is not None and identity.passkey is not None
    assert [s.answer for s in identity.passkey.samples] == [
        s.answer for s in original.passkey.samples
    ]
    for a, b in zip(original.copy.per_trial, identity.copy.per_trial):
        assert math.isclose(a.second_copy_loss, b.second_copy_loss, rel_tol=1e-4)
    del same

    # attention disabled: no retrieval, no copying
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
    blind = evaluate_retrieval(model, tokenizer, OPTIONS)
    assert blind.passkey is not None and blind.copy is not None
    assert blind.passkey.success_rates() == {1024: 0.0}
    assert math.isclose(blind.copy.relative_loss, 1.0, rel_tol=1e-4)
