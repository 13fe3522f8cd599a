"""The default data-aware method on the real embedded model (integration, default suite).

SmolLM2-135M (9 query / 3 KV heads) converted to 1 KV head, calibrated on a few windows of the
training novels, evaluated zero-shot on the first 16 windows of 512 tokens of *Persuasion*
(the original scores 36.6 there, mean pooling 12,183).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gqa_retrofit.conversion.in_memory import convert_in_memory
from gqa_retrofit.conversion.methods import DEFAULT_METHOD
from gqa_retrofit.conversion.pooling import HeadTarget

pytestmark = pytest.mark.integration

# 16 windows of 512 (half the converter's default budget): about a minute on 2 cores, and enough
# for the default pca-refit to reach issue 6's target (measured 79.2 with 8,192 tokens through the
# CLI, 74.3 with the default 16,384; mean pooling scores 12,183, the original 36.6).
CALIBRATION_TOKENS = 8192
TARGET_PERPLEXITY = 100.0


def test_default_method_converts_smollm2_to_one_kv_head(default_model: Path) -> None:
    from transformers import AutoTokenizer

    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

    corpus = default_corpus(ood=False)
    tokenizer = AutoTokenizer.from_pretrained(default_model)
    result = convert_in_memory(
        default_model,
        HeadTarget(kv_heads=1),
        DEFAULT_METHOD,
        corpus.train,
        tokens=CALIBRATION_TOKENS,
        tokenizer=tokenizer,
    )
    model = result.model
    assert model.config.num_key_value_heads == 1
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (64, 576)
    assert len(result.records) == 30
    ppl = evaluate_perplexity(model, corpus.test, tokenizer=tokenizer, seq_len=512, max_windows=16)
    assert ppl.windows == 16
    assert ppl.perplexity <= TARGET_PERPLEXITY, ppl.perplexity
