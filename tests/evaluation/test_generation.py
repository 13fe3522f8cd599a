"""Greedy continuations and the repeated-4-gram fraction."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.evaluation.generation import greedy_continuations, repeated_ngram_fraction
from tests.tiny_models import tiny_model, tiny_tokenizer


@pytest.mark.parametrize(
    ("ids", "n", "expected"),
    [
        ([1, 2, 3, 4, 1, 2, 3, 4], 4, 1 - 4 / 5),  # (1,2,3,4) twice among 5 4-grams
        ([7] * 10, 4, 1 - 1 / 7),  # one token forever: 7 4-grams, 1 distinct
        (list(range(20)), 4, 0.0),  # nothing repeats
        ([1, 2, 3], 4, 0.0),  # no 4-gram at all
        ([1, 2, 1, 2, 1], 2, 1 - 2 / 4),  # bigrams (1,2),(2,1),(1,2),(2,1)
    ],
)
def test_repeated_ngram_fraction(ids: list[int], n: int, expected: float) -> None:
    assert repeated_ngram_fraction(ids, n) == pytest.approx(expected, abs=1e-12)


def test_repeated_ngram_fraction_rejects_n_below_one() -> None:
    with pytest.raises(ConfigError, match="n-gram length must be at least 1, got 0"):
        repeated_ngram_fraction([1, 2, 3], 0)


def test_greedy_continuations_match_generate_and_exclude_the_prompt() -> None:
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    prompts = ["Anne walked", "It was"]
    result = greedy_continuations(model, tokenizer, prompts, new_tokens=12)
    assert [s.prompt for s in result.samples] == prompts
    for sample, prompt in zip(result.samples, prompts):
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            reference = model.generate(
                **encoded, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )[0, encoded["input_ids"].shape[1] :].tolist()
        assert sample.token_ids == reference
        assert sample.text == tokenizer.decode(reference, skip_special_tokens=True)
        assert sample.repeated_4gram_fraction == repeated_ngram_fraction(reference)
    mean = sum(s.repeated_4gram_fraction for s in result.samples) / 2
    assert result.repeated_4gram_fraction == pytest.approx(mean)
    assert result.to_dict()["repeated_4gram_fraction"] == pytest.approx(mean)


def test_greedy_continuations_reject_zero_new_tokens() -> None:
    with pytest.raises(ConfigError, match="new_tokens must be at least 1, got 0"):
        greedy_continuations(tiny_model("llama"), tiny_tokenizer(), ["x"], new_tokens=0)
