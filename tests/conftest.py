"""Shared pytest fixtures. Tiny models come from :mod:`tests.tiny_models`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Tests never reach the real Hub; each test that needs one starts the loopback stand-in.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_hf_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own HF cache (datasets writes Arrow caches there)."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    yield


@pytest.fixture
def tiny_llama_dir(tmp_path: Path) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path / "tiny-llama", "llama")
