"""verify_checkpoint on good and deliberately damaged converted checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.conversion.verify import verify_checkpoint
from gqa_retrofit.errors import ConversionError
from tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("verify")
    src = save_tiny_model(base / "src", "qwen2", max_shard_size="40KB")
    convert_checkpoint(src, base / "out", kv_heads=1, max_shard_size="60KB")
    return base / "out"


def _copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "copy"))


def test_good_checkpoint_passes_every_check(good: Path) -> None:
    report = verify_checkpoint(good)
    assert report.ok, report.problems
    assert [c.name for c in report.checks] == [
        "manifest",
        "hashes",
        "shards",
        "config",
        "shapes",
        "finite",
        "forward",
    ]
    assert report.tensors == sum(len(load_file(p)) for p in good.glob("*.safetensors"))
    assert report.to_dict()["ok"] is True


def test_nan_in_a_tensor_is_named(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    name = "model.layers.1.mlp.up_proj.weight"
    shard = next(p for p in out.glob("*.safetensors") if name in load_file(p))
    tensors = load_file(shard)
    tensors[name][3, 5] = float("nan")
    save_file(tensors, shard, metadata={"format": "pt"})
    report = verify_checkpoint(out, load=False)
    assert not report.ok
    assert report.problems == [
        f"hashes: {shard.name} differs from the manifest (SHA-256 mismatch: changed or corrupt)",
        f"finite: {name} has NaN or Inf",
    ]


def test_a_flipped_data_byte_is_caught(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    shard = sorted(out.glob("model-*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight: still a finite number, same size, same header
    shard.write_bytes(bytes(data))
    report = verify_checkpoint(out, load=False)
    assert report.problems == [
        f"hashes: {shard.name} differs from the manifest (SHA-256 mismatch: changed or corrupt)"
    ]
    tokenizer_side = out / "config.json"
    tokenizer_side.write_text(tokenizer_side.read_text().replace('"', '"', 1) + " ")
    problems = verify_checkpoint(out, load=False).problems
    assert problems[0].startswith("hashes: config.json differs from the manifest")


def test_missing_shard_and_wrong_config_are_reported(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 2}))
    report = verify_checkpoint(out, load=False)
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {"hashes", "config", "shapes"}
    assert "kv_heads=2 in config.json, 1 in the manifest" in " ".join(report.problems)
    assert (
        "model.layers.0.self_attn.k_proj.weight has shape [16, 64], the config needs "
        "[32, 64]" in " ".join(report.problems)
    )
    victim = sorted(out.glob("model-*.safetensors"))[0]
    victim.unlink()
    report = verify_checkpoint(out, load=False)
    problems = " ".join(report.problems)
    assert f"manifest: {victim.name} is listed but missing" in problems
    assert f"shards: shard '{victim.name}' is missing" in problems


def test_forward_failure_is_a_failed_check(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    name = "model.embed_tokens.weight"
    shard = next(p for p in out.glob("*.safetensors") if name in load_file(p))
    tensors = load_file(shard)
    tensors[name] = torch.full_like(tensors[name], float("inf"))
    save_file(tensors, shard, metadata={"format": "pt"})
    report = verify_checkpoint(out)
    assert {c.name for c in report.checks if not c.ok} == {"hashes", "finite", "forward"}
    assert "forward: logits contain NaN or Inf" in report.problems


def test_not_a_converted_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="is not a directory"):
        verify_checkpoint(tmp_path / "nothing")
    src = save_tiny_model(tmp_path / "plain", "llama")
    with pytest.raises(ConversionError, match=r"has no gqa_retrofit\.json"):
        verify_checkpoint(src)
