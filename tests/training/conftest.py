"""Fixtures for training tests: a tiny llama with a character tokenizer and a small corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_tiny_lm, write_corpus


@pytest.fixture
def tiny_lm(tmp_path: Path) -> Path:
    return save_tiny_lm(tmp_path / "tiny-lm")


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "corpus")
    return tmp_path / "corpus"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread is fastest and immune to a busy machine's oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
