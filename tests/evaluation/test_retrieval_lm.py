"""The probes' forward passes equal the model's own logits and generate(), on every tiny family."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.evaluation.retrieval_lm import (
    bos_ids,
    check_length,
    greedy_decode,
    position_limit,
    token_losses,
)
from tiny_models import TINY_FAMILIES, tiny_model, tiny_tokenizer


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, 100, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_token_losses_equal_the_models_own_cross_entropy(family: str) -> None:
    model = tiny_model(family)
    ids = _ids(2, 40)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"
    )
    got = token_losses(model, ids, chunk=7)  # chunks that do not divide 39
    assert got.shape == (2, 39)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_greedy_decode_equals_generate(family: str) -> None:
    model = tiny_model(family)
    prompt = _ids(1, 30, seed=1)
    expected = model.generate(
        prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0
    )[0, 30:].tolist()
    assert greedy_decode(model, prompt[0].tolist(), 6) == expected
    # a stop token ends the answer before its first occurrence
    stop = expected[2]
    answer = greedy_decode(model, prompt[0].tolist(), 6, stop_ids=(stop,))
    assert answer == expected[: expected.index(stop)]


def test_token_losses_need_two_tokens() -> None:
    with pytest.raises(ConfigError, match="need at least 2 tokens per sequence, got 1"):
        token_losses(tiny_model("llama"), torch.tensor([[5]]))


def test_bos_and_position_limits() -> None:
    assert bos_ids(tiny_tokenizer()) == [1]
    llama, gpt2 = tiny_model("llama"), tiny_model("gpt2")
    assert position_limit(llama) == 256 and position_limit(gpt2) == 256
    assert check_length(llama, 256, what="x") is False
    # rotary positions: computed and flagged
    assert check_length(llama, 257, what="passkey length") is True
    # a learned position table cannot run past itself
    with pytest.raises(
        ConfigError,
        match=r"^passkey length 257 is beyond the position limit 256 of this gpt2 model "
        r"\(a learned position table\); valid: at most 256$",
    ):
        check_length(gpt2, 257, what="passkey length")
