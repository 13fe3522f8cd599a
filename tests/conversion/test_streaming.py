"""Streaming safetensors reader, shard planner and writer on real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gqa_retrofit.conversion import streaming
from gqa_retrofit.conversion.streaming import (
    INDEX_NAME,
    CheckpointReader,
    SafetensorsStreamWriter,
    copy_tensor,
    parse_shard_size,
    plan_shards,
    read_safetensors_header,
)
from gqa_retrofit.errors import ConfigError, ConversionError
from tiny_models import save_tiny_model


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(7, 5, generator=g),
        "b.bf16": torch.randn(3, 4, 2, generator=g).to(torch.bfloat16),
        "c.ids": torch.arange(11, dtype=torch.int64),
        "d.mask": torch.tensor([True, False, True]),
        "e.empty": torch.empty(0, 4),
        "f.scalar": torch.tensor(3.5, dtype=torch.float16),
    }


def test_writer_output_is_read_back_exactly_by_safetensors(tmp_path: Path) -> None:
    tensors = _tensors()
    path = tmp_path / "x.safetensors"
    writer = SafetensorsStreamWriter(
        path, [(n, tuple(t.shape), t.dtype) for n, t in tensors.items()]
    )
    for name, tensor in tensors.items():
        raw = bytes(tensor.reshape(-1).view(torch.uint8).numpy()) if tensor.numel() else b""
        # feed each tensor in pieces of 3 bytes to exercise chunked writes
        for start in range(0, len(raw), 3):
            writer.write(name, raw[start : start + 3])
    writer.close()
    loaded = load_file(path)
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_writer_rejects_out_of_order_oversized_and_incomplete_tensors(tmp_path: Path) -> None:
    entries = [("a", (2, 2), torch.float32), ("b", (3,), torch.float32)]
    writer = SafetensorsStreamWriter(tmp_path / "w.safetensors", entries)
    with pytest.raises(ConversionError, match="got 'b', expected 'a' next"):
        writer.write("b", torch.zeros(3))
    with pytest.raises(ConversionError, match="tensor 'a' got 20 bytes, its header says 16"):
        writer.write("a", torch.zeros(5))
    writer.write("a", torch.ones(2, 2))
    writer.write("b", torch.ones(2))
    with pytest.raises(ConversionError, match=r"tensor 'b' incomplete \(8 of 12 bytes\)"):
        writer.close()


@pytest.fixture(scope="module")
def sharded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("src") / "m", "qwen2", max_shard_size="20KB")


def test_reader_reads_every_tensor_rows_and_bytes_like_safetensors(sharded_dir: Path) -> None:
    index = json.loads((sharded_dir / INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) > 3  # really sharded
    with CheckpointReader(sharded_dir) as reader:
        assert set(reader.names()) == set(index["weight_map"])
        for name, file in index["weight_map"].items():
            with safe_open(sharded_dir / file, "pt") as f:
                expected = f.get_tensor(name)
                assert torch.equal(reader.read(name), expected), name
                if expected.dim() >= 1 and expected.shape[0] > 3:
                    assert torch.equal(reader.read_rows(name, 1, 3), f.get_slice(name)[1:3])
            raw = b"".join(bytes(c) for c in reader.iter_bytes(name, chunk_bytes=100))
            assert raw == bytes(expected.reshape(-1).view(torch.uint8).numpy())
        assert reader.total_bytes == index["metadata"]["total_size"]


def test_truncated_shard_is_named(sharded_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(sharded_dir, tmp_path / "c"))
    shard = sorted(copy.glob("model-*.safetensors"))[2]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ConversionError, match=rf"shard '{shard.name}' is truncated"):
        CheckpointReader(copy)


def test_missing_shard_and_index_pointing_at_absent_tensor_are_named(
    sharded_dir: Path, tmp_path: Path
) -> None:
    import shutil

    copy = Path(shutil.copytree(sharded_dir, tmp_path / "c"))
    index = json.loads((copy / INDEX_NAME).read_text())
    index["weight_map"]["model.layers.0.self_attn.extra.weight"] = (
        "model-00001-of-" + (sorted(copy.glob("model-*.safetensors"))[0].name.split("-of-")[1])
    )
    (copy / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(
        ConversionError,
        match=re.escape(
            "index maps tensor 'model.layers.0.self_attn.extra.weight' to shard 'model-00001-of-"
        ),
    ):
        CheckpointReader(copy)
    victim = sorted(copy.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(ConversionError, match=rf"shard '{victim.name}' is missing"):
        CheckpointReader(copy)


def test_header_of_a_non_safetensors_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ConversionError, match="corrupt safetensors header"):
        read_safetensors_header(bad)


def test_plan_matches_save_pretrained_style_sharding(tmp_path: Path) -> None:
    entries = [(f"t{i}", (10, 10), torch.float32) for i in range(7)]  # 400 bytes each
    entries.append(("big", (50, 10), torch.float32))  # 2000 bytes: a shard of its own
    plan = plan_shards(entries, max_shard_size=1000)
    # greedy in order; a tensor above the limit gets a shard of its own (as save_pretrained)
    assert plan.files == {
        "model-00001-of-00005.safetensors": ["t0", "t1"],
        "model-00002-of-00005.safetensors": ["t2", "t3"],
        "model-00003-of-00005.safetensors": ["t4", "t5"],
        "model-00004-of-00005.safetensors": ["big"],
        "model-00005-of-00005.safetensors": ["t6"],
    }
    assert plan.total_size == 7 * 400 + 2000
    assert plan.is_sharded
    single = plan_shards(entries, max_shard_size="1MB")
    assert list(single.files) == ["model.safetensors"] and not single.is_sharded


def test_copy_tensor_casts_in_row_chunks(
    sharded_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # raw copies map the source in windows: make them small and unaligned to the page size
    monkeypatch.setattr(streaming, "MMAP_COPY_BYTES", 3000)
    with CheckpointReader(sharded_dir) as reader:
        name = "model.embed_tokens.weight"
        source = reader.read(name)
        path = tmp_path / "o.safetensors"
        writer = SafetensorsStreamWriter(
            path,
            [
                (name, tuple(source.shape), torch.bfloat16),
                ("raw", tuple(source.shape), torch.float32),
            ],
        )
        copy_tensor(reader, name, writer, dtype=torch.bfloat16, chunk_bytes=1000)  # 4 rows/chunk
        copy_tensor(reader, name, writer, out_name="raw", chunk_bytes=1000)
        writer.close()
    out = load_file(path)
    assert torch.equal(out[name], source.to(torch.bfloat16))
    assert torch.equal(out["raw"], source)


def test_parse_shard_size() -> None:
    assert parse_shard_size("5GB") == 5 * 10**9
    assert parse_shard_size("500MB") == 500 * 10**6
    assert parse_shard_size(1234) == 1234
    with pytest.raises(ConfigError, match="invalid shard size 'huge'"):
        parse_shard_size("huge")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_shard_size(0)


def test_reader_without_weights_explains_bin_only(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ConversionError, match=r"only PyTorch \.bin weights found"):
        CheckpointReader(tmp_path)
    save_file({"x": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert CheckpointReader(tmp_path).names() == ["x"]
