"""Copy probe: exact losses, identity conversion = original, no attention = no copying."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.evaluation.retrieval_copy import candidate_ids, copy_probe
from tiny_models import tiny_model, tiny_tokenizer


def _zero_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Attention disabled: every layer's attention output projection is zero."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
    return model


def test_losses_are_the_mean_over_the_same_bigrams_of_each_copy() -> None:
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    result = copy_probe(model, tokenizer, span_length=20, trials=2, seed=5)
    pool = torch.tensor(candidate_ids(model, tokenizer))
    generator = torch.Generator().manual_seed(5)
    for trial in result.per_trial:
        span = pool[torch.randint(len(pool), (20,), generator=generator)].tolist()
        ids = torch.tensor([[1, *span, *span]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        nll = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
        # sequence positions 2..20 are s_2..s_20 (first copy), 22..40 the second copy's
        assert math.isclose(trial.first_copy_loss, float(nll[1:20].mean()), rel_tol=1e-5)
        assert math.isclose(trial.second_copy_loss, float(nll[21:40].mean()), rel_tol=1e-5)
    assert result.candidates == 97  # 101 tokenizer ids, 4 special
    assert math.isclose(result.chance_loss, math.log(97))
    data = result.to_dict()
    assert data["relative_loss"] == result.second_copy_loss / result.first_copy_loss
    assert data["bos_token_id"] == 1 and data["beyond_position_limit"] is False


def test_deterministic_for_a_seed_and_trials_extend() -> None:
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    two = copy_probe(model, tokenizer, span_length=16, trials=2, seed=1)
    three = copy_probe(model, tokenizer, span_length=16, trials=3, seed=1)
    assert three.per_trial[:2] == two.per_trial
    assert copy_probe(model, tokenizer, span_length=16, trials=2, seed=2).per_trial != two.per_trial


def test_attention_disabled_scores_like_no_context() -> None:
    """Without attention each loss depends only on the previous token: both copies score alike."""
    model = _zero_attention(tiny_model("llama"))
    result = copy_probe(model, tiny_tokenizer(), span_length=32, trials=3)
    for trial in result.per_trial:
        assert math.isclose(trial.second_copy_loss, trial.first_copy_loss, rel_tol=1e-5)
    assert math.isclose(result.relative_loss, 1.0, rel_tol=1e-5)


def test_an_identity_conversion_scores_like_the_original(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from gqa_retrofit.conversion.in_memory import convert_in_memory
    from gqa_retrofit.conversion.pooling import HeadTarget

    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    same = convert_in_memory(tiny_llama_dir, HeadTarget(kv_heads=2), "mean").model
    merged = convert_in_memory(tiny_llama_dir, HeadTarget(kv_heads=1), "mean").model
    tokenizer = tiny_tokenizer()
    ref = copy_probe(original, tokenizer, span_length=32, trials=2)
    got = copy_probe(same, tokenizer, span_length=32, trials=2)
    for a, b in zip(ref.per_trial, got.per_trial):
        assert math.isclose(a.first_copy_loss, b.first_copy_loss, rel_tol=1e-5)
        assert math.isclose(a.second_copy_loss, b.second_copy_loss, rel_tol=1e-5)
    # and the probe does see a real change of the attention
    assert copy_probe(merged, tokenizer, span_length=32, trials=2).per_trial != ref.per_trial


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, r"^copy-probe trials must be at least 1, got 0$"),
        ({"span_length": 1}, r"^copy-probe span length must be at least 2 tokens, got 1$"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        copy_probe(tiny_model("llama"), tiny_tokenizer(), **kwargs)


def test_beyond_the_position_limit_is_flagged_or_refused() -> None:
    tokenizer = tiny_tokenizer()
    result = copy_probe(tiny_model("llama"), tokenizer, span_length=200, trials=1)
    assert result.beyond_position_limit is True  # 401 tokens, limit 256, rotary: computed
    with pytest.raises(ConfigError, match="copy-probe sequence length 401 is beyond"):
        copy_probe(tiny_model("gpt2"), tokenizer, span_length=200, trials=1)
