"""Long-window perplexity: BOS, windows, buckets by position, bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gqa_retrofit.errors import ConfigError, DataError
from gqa_retrofit.evaluation.retrieval_long import long_window_perplexity
from tiny_models import tiny_model, tiny_tokenizer

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. "


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT * 12, encoding="utf-8")  # 1,092 characters = tokens
    return path


def test_loss_by_position_matches_a_direct_computation(text_file: Path) -> None:
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    result = long_window_perplexity(model, tokenizer, text_file, windows=3, bucket_size=100)
    assert result.seq_len == 256  # the model's max_position_embeddings
    ids = tokenizer((TEXT * 12), add_special_tokens=False)["input_ids"]
    rows = []
    for w in range(3):
        window = torch.tensor([[1, *ids[w * 255 : (w + 1) * 255]]])  # BOS + 255 text tokens
        with torch.no_grad():
            logits = model(input_ids=window).logits[0]
        rows.append(torch.nn.functional.cross_entropy(logits[:-1], window[0, 1:], reduction="none"))
    per_position = torch.stack(rows).mean(0)  # entry i: position i + 1
    assert [(b.start, b.end, b.tokens) for b in result.buckets] == [
        (1, 101, 300),
        (101, 201, 300),
        (201, 256, 165),
    ]
    for bucket in result.buckets:
        expected = float(per_position[bucket.start - 1 : bucket.end - 1].mean())
        assert math.isclose(bucket.loss, expected, rel_tol=1e-5)
    assert math.isclose(result.loss, float(per_position.mean()), rel_tol=1e-5)
    assert result.tokens == 3 * 255 and result.bos_token_id == 1
    assert math.isclose(result.to_dict()["perplexity"], math.exp(result.loss))


def test_default_buckets_are_a_sixteenth(text_file: Path) -> None:
    result = long_window_perplexity(tiny_model("llama"), tiny_tokenizer(), text_file, seq_len=64)
    assert result.bucket_size == 4 and len(result.buckets) == 16 and result.windows == 2


def test_text_shorter_than_the_windows(text_file: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"has 1092 tokens, fewer than 5 window\(s\) of 255 text tokens",
    ):
        long_window_perplexity(tiny_model("llama"), tiny_tokenizer(), text_file, windows=5)


def test_beyond_the_limit_is_flagged(text_file: Path) -> None:
    result = long_window_perplexity(
        tiny_model("llama"), tiny_tokenizer(), text_file, seq_len=300, windows=1
    )
    assert result.beyond_position_limit is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"windows": 0}, r"^long-window count must be at least 1, got 0$"),
        ({"seq_len": 1}, r"^long-window length must be at least 2 tokens, got 1$"),
        ({"bucket_size": 0}, r"^position bucket size must be at least 1 token, got 0$"),
    ],
)
def test_bad_arguments(text_file: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        long_window_perplexity(tiny_model("llama"), tiny_tokenizer(), text_file, **kwargs)
