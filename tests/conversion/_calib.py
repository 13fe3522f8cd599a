"""Shared helpers for calibration tests: a word-level tokenizer and random text (tiny models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tiny_models import VOCAB


def word_tokenizer() -> Any:
    """A real ``tokenizers`` word-level tokenizer over the tiny vocabulary (``w0`` ... ``w127``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def random_text(path: Path, words: int, *, seed: int = 0) -> Path:
    """Write ``words`` random tiny-vocabulary words to ``path``."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (words,), generator=g)
    path.write_text(" ".join(f"w{int(i)}" for i in ids))
    return path
