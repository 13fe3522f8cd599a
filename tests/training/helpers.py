"""Tiny character-level tokenizer and corpus for training tests (real ``tokenizers`` objects)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from tiny_models import save_tiny_model

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3 match the tiny configs' pad/bos/eos


def char_tokenizer(extra: str = "") -> Any:
    """A fast tokenizer with one token per printable ASCII character (99 ids < VOCAB 128)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"] + list(extra)
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def save_tiny_lm(
    path: Path,
    model_type: str = "llama",
    *,
    seed: int = 0,
    tokenizer: Any | None = None,
    **overrides: Any,
) -> Path:
    """A tiny random checkpoint with the character tokenizer saved next to it."""
    save_tiny_model(path, model_type, seed=seed, **overrides)
    (tokenizer or char_tokenizer()).save_pretrained(path)
    return path


CORPUS = [
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. ",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
    "disposition, seemed to unite some of the best blessings of existence. ",
    "The family of Dashwood had long been settled in Sussex. Their estate was large, and "
    "their residence was at Norland Park. ",
]


def write_corpus(directory: Path, repeat: int = 4) -> list[Path]:
    """Three small text files (one document each) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(CORPUS):
        path = directory / f"doc{i}.txt"
        path.write_text(text * repeat, encoding="utf-8")
        paths.append(path)
    return paths
