"""Data-aware conversion of every family and layout: the streamed checkpoint reloads through
plain ``from_pretrained`` and equals the in-memory reference conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from gqa_retrofit import convert_checkpoint
from gqa_retrofit.conversion.in_memory import convert_in_memory
from gqa_retrofit.conversion.pooling import HeadTarget
from tests.conversion._calib import random_text
from tiny_models import TINY_FAMILIES, save_tiny_model

IDS = torch.tensor([[5, 17, 3, 99, 42, 7, 64, 1, 23, 88]])
TOKENS = 1024


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_text(tmp_path_factory.mktemp("text") / "calib.txt", 2000)


def _convert(src: Path, out: Path, text: Path) -> Any:
    return convert_checkpoint(
        src, out, kv_heads=1, method="pca-refit", calibration=text, calibration_tokens=TOKENS
    )


@pytest.mark.parametrize("family", [f for f in TINY_FAMILIES if f != "mixtral"])
def test_calibrated_conversion_reloads_and_equals_in_memory(
    family: str, text: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = save_tiny_model(tmp_path / "src", family, max_shard_size="40KB")
    report = _convert(src, tmp_path / "out", text)
    assert report.manifest["method"]["name"] == "pca-refit"
    custom = "auto_map" in (tmp_path / "out" / "config.json").read_text()
    assert custom == (family in {"gpt2", "gpt_neox", "opt", "falcon"})
    loaded = AutoModelForCausalLM.from_pretrained(
        tmp_path / "out", attn_implementation="eager", trust_remote_code=custom
    ).eval()
    reference = convert_in_memory(
        src,
        HeadTarget(1),
        "pca-refit",
        [text],
        tokens=TOKENS,
        tokenizer=AutoTokenizer.from_pretrained(src),
    ).model
    reference.config._attn_implementation = "eager"
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, reference(IDS).logits)


def test_mixture_of_experts_is_refused_by_data_aware_methods(text: Path, tmp_path: Path) -> None:
    """transformers v5 stores mixtral's experts unfused and fuses them while loading."""
    from gqa_retrofit.errors import ConversionError

    src = save_tiny_model(tmp_path / "src", "mixtral")
    with pytest.raises(ConversionError) as err:
        _convert(src, tmp_path / "out", text)
    assert str(err.value) == (
        "data-aware methods cannot stream this mixture-of-experts mixtral checkpoint: "
        "model.layers.0.mlp.gate.weight is stored under another name; use --method mean"
    )
    assert not (tmp_path / "out").exists()
