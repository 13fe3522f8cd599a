"""The gqa_retrofit.json manifest: contents, fingerprints, reading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gqa_retrofit import __version__
from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.conversion.manifest import (
    MANIFEST_NAME,
    calibration_fingerprint,
    file_sha256,
    hub_revision,
    read_manifest,
    source_fingerprint,
)
from gqa_retrofit.errors import ConfigError, ConversionError
from tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("manifest")
    src = save_tiny_model(base / "src", "llama", max_shard_size="40KB")
    convert_checkpoint(src, base / "out", kv_heads=1, max_shard_size="60KB", dtype="fp16")
    return src, base / "out"


def test_manifest_records_source_method_heads_files_and_versions(
    converted: tuple[Path, Path],
) -> None:
    src, out = converted
    manifest = read_manifest(out)
    assert manifest == json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["source"]["name"] == "../src"  # relative to the output: no local prefix
    assert str(src.parent) not in (out / MANIFEST_NAME).read_text()
    assert manifest["source"]["base_model"] is None and "base_model" not in manifest
    assert manifest["source"]["model_type"] == "llama"
    assert manifest["source"]["revision"] is None  # a plain local directory
    shards = sorted(p.name for p in src.glob("*.safetensors"))
    assert manifest["source"]["fingerprint"]["digest"] == source_fingerprint(src, shards)["digest"]
    assert manifest["method"]["name"] == "mean"
    assert manifest["heads"] == {
        "before": {"heads": 4, "kv_heads": 2, "head_dim": 16},
        "after": {"heads": 4, "kv_heads": 1, "head_dim": 16},
    }
    assert manifest["layers"] == [
        {"layer": 0, "groups": [[0, 1]]},
        {"layer": 1, "groups": [[0, 1]]},
    ]
    assert manifest["calibration"] is None
    assert manifest["tool"]["gqa_retrofit"] == __version__
    files = {p.name: p.stat().st_size for p in out.glob("*.safetensors")}
    assert {k: v["bytes"] for k, v in manifest["output"]["files"].items()} == files
    hashed = {**manifest["output"]["files"], **manifest["output"]["other_files"]}
    assert sorted(hashed) == sorted(
        p.name for p in out.iterdir() if not p.name.startswith(".") and p.name != MANIFEST_NAME
    )
    assert all(entry["sha256"] == file_sha256(out / name) for name, entry in hashed.items())
    assert manifest["output"]["dtype"] == "fp16"
    assert manifest["timings"]["total_seconds"] > 0


def test_source_fingerprint_follows_headers_and_config(tmp_path: Path) -> None:
    src = save_tiny_model(tmp_path / "a", "llama")
    before = source_fingerprint(src, ["model.safetensors"])["digest"]
    assert source_fingerprint(src, ["model.safetensors"])["digest"] == before
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-3}))
    assert source_fingerprint(src, ["model.safetensors"])["digest"] != before


def test_hub_revision_is_read_from_snapshot_paths(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--o--m" / "snapshots" / commit
    snap.mkdir(parents=True)
    assert hub_revision(snap) == commit
    assert hub_revision(tmp_path) is None


def test_calibration_fingerprint_hashes_contents(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("It is a truth universally acknowledged")
    fp = calibration_fingerprint([a], 128)
    assert fp["files"] == [
        {
            "name": "a.txt",
            "bytes": a.stat().st_size,
            "sha256": hashlib.sha256(a.read_bytes()).hexdigest(),
        }
    ]
    assert fp["tokens"] == 128
    assert calibration_fingerprint([a], 256)["digest"] != fp["digest"]
    a.write_text("It is a truth universally acknowledged!")
    assert calibration_fingerprint([a], 128)["digest"] != fp["digest"]


def test_read_manifest_rejects_missing_invalid_foreign_and_future(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"has no gqa_retrofit\.json"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ConversionError, match="is not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConversionError, match="not a gqa-retrofit conversion manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(
        json.dumps({"format": "gqa-retrofit-conversion", "format_version": 99})
    )
    with pytest.raises(ConversionError, match="format_version 99"):
        read_manifest(tmp_path)


def test_base_model_comes_from_a_hub_snapshot_or_the_caller(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--alice--tiny-llama" / "snapshots" / commit
    save_tiny_model(snapshot, "llama")
    manifest = convert_checkpoint(snapshot, tmp_path / "a", kv_heads=1).manifest
    assert manifest["base_model"] == "alice/tiny-llama"
    assert manifest["source"]["revision"] == commit
    assert manifest["source"]["name"] == f"../hub/models--alice--tiny-llama/snapshots/{commit}"
    given = convert_checkpoint(snapshot, tmp_path / "b", kv_heads=1, base_model="bob/original")
    assert given.manifest["base_model"] == "bob/original"
    with pytest.raises(ConfigError, match=r"^base model 'my model' is not a Hub model id"):
        convert_checkpoint(snapshot, tmp_path / "c", kv_heads=1, base_model="my model")
    assert not (tmp_path / "c").exists()


@pytest.mark.integration
def test_the_embedded_model_declares_its_hub_origin(default_model: Path) -> None:
    from gqa_retrofit.assets.model import SOURCE_ID
    from gqa_retrofit.conversion.manifest import embedded_origin, hub_origin

    origin = embedded_origin(default_model)
    assert origin is not None and origin["base_model"] == SOURCE_ID
    assert origin["format"] == "dequantized Q4_1 GGUF"
    assert hub_origin(str(default_model), default_model) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert embedded_origin(default_model.parent) is None
