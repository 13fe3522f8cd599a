"""Shared pytest fixtures. Tiny models come from :mod:`tests.tiny_models`."""

from __future__ import annotations

import os
import tempfile
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Tests never reach the real Hub; each test that needs one starts the loopback stand-in.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A private HF cache for the whole session, set before any HF library is imported (they read
# these variables at import time). The embedded assets live in gqa-retrofit's own cache.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gqa-retrofit-hf-home-")
os.environ.pop("HF_TOKEN", None)


@pytest.fixture
def tiny_llama_dir(tmp_path: Path) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path / "tiny-llama", "llama")
