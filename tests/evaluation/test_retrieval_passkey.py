"""Passkey prompts, scoring and bad inputs, on tiny models with a character tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gqa_retrofit.errors import ConfigError, DataError
from gqa_retrofit.evaluation import retrieval_passkey as rp
from gqa_retrofit.evaluation.retrieval_passkey import (
    FILLER,
    INTRO,
    QUESTION,
    PasskeyPrompts,
    answer_matches,
    default_lengths,
    passkey_retrieval,
)
from tiny_models import tiny_model, tiny_tokenizer

NATURAL = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families! "
)


def _text(ids: list[int]) -> str:
    return str(tiny_tokenizer().decode(ids, skip_special_tokens=False))


def test_default_ladder_doubles_from_1k_to_the_limit() -> None:
    assert default_lengths(8192) == [1024, 2048, 4096, 8192]
    assert default_lengths(6000) == [1024, 2048, 4096]
    assert default_lengths(256) == [256]
    with pytest.raises(ConfigError, match="has no max_position_embeddings"):
        default_lengths(None)


def test_answer_matches_the_first_number_only() -> None:
    assert answer_matches(" 12345. The grass", "12345")
    assert not answer_matches(" 1234", "12345")
    assert not answer_matches(" 123456", "12345")
    assert not answer_matches(" 54321 12345", "12345")
    assert not answer_matches(" the key", "12345")


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_filler_prompt_is_exactly_length_tokens_with_the_needle_at_depth(depth: float) -> None:
    prompts = PasskeyPrompts(tiny_tokenizer(), "filler", longest=900, seed=0)
    prompt = prompts.build(900, depth, 0)
    assert len(prompt.ids) == 900 and prompt.ids[0] == 1  # BOS
    text = _text(prompt.ids)
    assert text.startswith("<s>" + INTRO + " " + FILLER[:20]) or depth == 0.0
    assert text.endswith(" " + QUESTION)
    needle = f" The pass key is {prompt.passkey}. Remember it. {prompt.passkey} is the pass key."
    assert _text(prompt.ids[prompt.needle_token :]).startswith(needle)
    assert re.fullmatch(r"\d{5}", prompt.passkey)
    # the needle sits at a filler boundary, at the depth asked for (within one filler unit)
    before = _text(prompt.ids[1 + len(INTRO) : prompt.needle_token])
    haystack = 900 - 1 - len(INTRO) - len(needle) - len(" " + QUESTION)
    assert len(before) % len(" " + FILLER) == 0
    assert abs(len(before) - depth * haystack) <= len(" " + FILLER)


def test_prompts_are_deterministic_per_cell_and_differ_across_trials() -> None:
    a = PasskeyPrompts(tiny_tokenizer(), "filler", longest=600, seed=3)
    b = PasskeyPrompts(tiny_tokenizer(), "filler", longest=600, seed=3)
    assert a.build(600, 0.5, 1) == b.build(600, 0.5, 1)
    keys = {a.build(600, 0.5, t).passkey for t in range(6)}
    assert len(keys) == 6
    assert PasskeyPrompts(tiny_tokenizer(), "filler", longest=600, seed=4).build(
        600, 0.5, 1
    ) != a.build(600, 0.5, 1)


def test_natural_haystack_is_an_excerpt_and_the_needle_follows_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text(NATURAL * 10, encoding="utf-8")
    prompts = PasskeyPrompts(tiny_tokenizer(), path, longest=700, seed=0)
    prompt = prompts.build(700, 0.5, 0)
    assert len(prompt.ids) == 700
    before = _text(prompt.ids[1 + len(INTRO) : prompt.needle_token])
    assert before in NATURAL * 10 and before.rstrip().endswith((".", "!"))


def test_haystack_file_shorter_than_the_longest_length_names_file_and_length(
    tmp_path: Path,
) -> None:
    path = tmp_path / "short.txt"
    path.write_text(NATURAL, encoding="utf-8")
    model = tiny_model("llama", max_position_embeddings=1024)
    with pytest.raises(
        DataError,
        match=rf"^haystack file '{re.escape(str(path))}' has {len(NATURAL)} tokens, fewer than "
        r"the longest passkey length 800; use a longer text or shorter lengths$",
    ):
        passkey_retrieval(model, tiny_tokenizer(), lengths=[400, 800], haystack=path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, r"^passkey trials must be at least 1, got 0$"),
        ({"depths": [0.5, 1.5]}, r"^passkey depth 1.5 is outside \[0, 1\]$"),
        ({"depths": [-0.1]}, r"^passkey depth -0.1 is outside \[0, 1\]$"),
        ({"lengths": [0]}, r"^passkey length 0 must be a positive number of tokens$"),
        (
            {"lengths": [100]},
            r"^passkey length 100 is too short for the intro, needle and question \(\d+ tokens\); "
            r"valid: at least \d+$",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        passkey_retrieval(tiny_model("llama"), tiny_tokenizer(), **kwargs)


def test_results_per_length_and_depth_and_the_position_limit_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Aggregation: a stand-in decoder that finds the key only when it is in the first half."""
    tokenizer = tiny_tokenizer()

    def decode(model: object, ids: list[int], new_tokens: int, **_: object) -> list[int]:
        text = _text(ids)
        key = re.search(r"pass key is (\d{5})", text)
        assert key is not None
        found = text.index(key.group(1)) < len(text) / 2
        return tokenizer(" " + (key.group(1) if found else "00000") + ".")["input_ids"]

    monkeypatch.setattr(rp, "greedy_decode", decode)
    model = tiny_model("llama", max_position_embeddings=512)
    result = passkey_retrieval(model, tokenizer, lengths=[1024, 512], depths=[0.0, 1.0], trials=3)
    assert [row.length for row in result.lengths] == [512, 1024]
    assert [row.beyond_position_limit for row in result.lengths] == [False, True]
    assert result.success_rates() == {512: 0.5, 1024: 0.5}
    for row in result.lengths:
        assert [(c.depth, c.successes, c.trials) for c in row.by_depth] == [
            (0.0, 3, 3),
            (1.0, 0, 3),
        ]
    data = result.to_dict()
    assert data["position_limit"] == 512 and data["bos_token_id"] == 1
    assert len(data["samples"]) == 12
    assert data["samples"][0]["answer"] == f" {data['samples'][0]['passkey']}."
    assert data["lengths"][1]["by_depth"][0] == {
        "depth": 0.0,
        "success_rate": 1.0,
        "successes": 3,
        "trials": 3,
    }


def test_a_random_tiny_model_runs_end_to_end() -> None:
    model = tiny_model("llama", max_position_embeddings=512)
    result = passkey_retrieval(model, tiny_tokenizer(), depths=[0.5], trials=1, seed=1)
    assert [row.length for row in result.lengths] == [512]
    assert result.samples[0].success is answer_matches(
        result.samples[0].answer, result.samples[0].passkey
    )
