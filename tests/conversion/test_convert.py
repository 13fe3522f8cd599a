"""convert_checkpoint on real tiny checkpoints: exactness, streaming, atomicity, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from gqa_retrofit.arch import get_family
from gqa_retrofit.arch.layout import (
    attention_prefix,
    attention_tensor_names,
    merge_attention,
    split_attention,
)
from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.conversion.pooling import HeadTarget, get_pooling
from gqa_retrofit.conversion.streaming import INDEX_NAME, SafetensorsStreamWriter
from gqa_retrofit.errors import (
    ConfigError,
    ConversionError,
    OutputExistsError,
    UnsupportedFamilyError,
)
from gqa_retrofit.patching import patch_config
from tests.conversion._convert_helpers import reference_conversion, tree_digest
from tiny_models import TINY_FAMILIES, save_tiny_model, tiny_model

IDS = torch.tensor([[5, 17, 3, 99, 42, 7, 64, 1, 23, 88]])


def _load_dir(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory (single file or sharded)."""
    out: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def test_same_kv_count_is_bit_identical(tmp_path: Path) -> None:
    src = save_tiny_model(tmp_path / "src", "qwen2", max_shard_size="30KB")  # q/k/v biases
    report = convert_checkpoint(src, tmp_path / "out", kv_heads=2, max_shard_size="30KB")
    before, after = _load_dir(src), _load_dir(tmp_path / "out")
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].dtype == after[name].dtype
        assert torch.equal(before[name], after[name]), name
    assert report.kv_heads_before == report.kv_heads_after == 2
    assert (tmp_path / "out" / "generation_config.json").read_text() == (
        src / "generation_config.json"
    ).read_text()


def test_expanded_mha_back_to_original_kv_gives_identical_logits(tmp_path: Path) -> None:
    model = tiny_model("llama")  # 4 query heads, 2 KV heads
    spec, config = get_family("llama"), model.config
    mha_config = patch_config(config, kv_heads=4)
    state = model.state_dict()
    for i in range(config.num_hidden_layers):
        prefix = attention_prefix(spec, i)
        rel = attention_tensor_names(spec, config)
        weights = split_attention(spec, config, {r: state[prefix + r] for r in rel})
        expanded = get_pooling("mean").fn(weights, HeadTarget(kv_heads=4), None).weights
        state.update(
            {prefix + r: t for r, t in merge_attention(spec, mha_config, expanded).items()}
        )
    from transformers import AutoModelForCausalLM

    mha = AutoModelForCausalLM.from_config(mha_config).eval()
    mha.load_state_dict(state)
    mha.save_pretrained(tmp_path / "mha")
    assert (
        load_file(tmp_path / "mha" / "model.safetensors")[
            "model.layers.0.self_attn.k_proj.weight"
        ].shape[0]
        == 4 * 16
    )

    convert_checkpoint(tmp_path / "mha", tmp_path / "back", kv_heads=2)
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert back.config.num_key_value_heads == 2
    with torch.no_grad():
        assert torch.equal(back(IDS).logits, model(IDS).logits)


def test_many_small_shards_equal_in_memory_conversion_and_index_is_valid(tmp_path: Path) -> None:
    src = save_tiny_model(tmp_path / "src", "qwen3", max_shard_size="16KB")
    n_src_shards = len(list(src.glob("model-*.safetensors")))
    assert n_src_shards >= 8
    out = tmp_path / "out"
    convert_checkpoint(src, out, kv_heads=1, max_shard_size="24KB", dtype="bf16")
    _, expected = reference_conversion(tiny_model("qwen3"), 1, dtype=torch.bfloat16)
    got = _load_dir(out)
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert got[name].dtype == torch.bfloat16
        assert torch.equal(got[name], tensor), name

    index = json.loads((out / INDEX_NAME).read_text())
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert sorted(set(index["weight_map"].values())) == files
    assert len(files) > 3
    held: dict[str, str] = {}
    for file in files:
        with safe_open(out / file, "pt") as f:
            assert f.metadata() == {"format": "pt"}
            held.update({k: file for k in f.keys()})  # noqa: SIM118
    assert held == index["weight_map"]
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in got.values())
    for file in files:  # every shard within the budget unless a single tensor is larger
        tensors = load_file(out / file)
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        assert size <= 24_000 or len(tensors) == 1


def test_failure_after_some_shards_leaves_nothing_and_rerun_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = save_tiny_model(tmp_path / "src", "llama", max_shard_size="20KB")
    digest = tree_digest(src)
    closed: list[str] = []
    original_close = SafetensorsStreamWriter.close

    def failing_close(self: SafetensorsStreamWriter) -> None:
        original_close(self)
        closed.append(self.path.name)
        if len(closed) == 3:
            raise OSError("simulated crash after three shards")

    monkeypatch.setattr(SafetensorsStreamWriter, "close", failing_close)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="simulated crash"):
        convert_checkpoint(src, out, kv_heads=1, max_shard_size="20KB")
    assert len(closed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no OUT, no temp sibling
    assert tree_digest(src) == digest

    monkeypatch.setattr(SafetensorsStreamWriter, "close", original_close)
    report = convert_checkpoint(src, out, kv_heads=1, max_shard_size="20KB")
    assert len(report.files) > 3 and (out / "gqa_retrofit.json").is_file()
    assert tree_digest(src) == digest


def test_every_family_reloads_in_a_fresh_process_and_equals_reference(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    families = TINY_FAMILIES
    expected_logits = {}
    for family in families:
        src = save_tiny_model(tmp_path / f"{family}-src", family, max_shard_size="40KB")
        convert_checkpoint(src, tmp_path / family, kv_heads=1)
        new_config, state = reference_conversion(tiny_model(family), 1)
        new_config._attn_implementation = "eager"
        reference = AutoModelForCausalLM.from_config(new_config).eval()
        reference.load_state_dict(state)
        with torch.no_grad():
            expected_logits[family] = reference(IDS).logits
    script = (
        "import sys, torch\n"
        "from safetensors.torch import save_file\n"
        "from transformers import AutoModelForCausalLM\n"
        "ids = torch.tensor([[5, 17, 3, 99, 42, 7, 64, 1, 23, 88]])\n"
        "out = {}\n"
        "for path in sys.argv[2:]:\n"
        "    custom = 'auto_map' in open(path + '/config.json').read()  # <family>_gqa types\n"
        "    m = AutoModelForCausalLM.from_pretrained(\n"
        "        path, attn_implementation='eager', trust_remote_code=custom).eval()\n"
        "    with torch.no_grad():\n"
        "        out[path.rsplit('/', 1)[1]] = m(ids).logits.contiguous()\n"
        "save_file(out, sys.argv[1])\n"
    )
    result_file = tmp_path / "logits.safetensors"
    env = dict(os.environ)
    subprocess.run(
        [sys.executable, "-c", script, str(result_file), *(str(tmp_path / f) for f in families)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    got = load_file(result_file)
    differing = [f for f in families if not torch.equal(got[f], expected_logits[f])]
    assert differing == []
    for family in families:
        config = json.loads((tmp_path / family / "config.json").read_text())
        kv_key = "num_kv_heads" if family.startswith("falcon") else "num_key_value_heads"
        assert config.get(kv_key) == 1, family


def test_tied_embeddings_stay_tied_and_moe_experts_are_copied(tmp_path: Path) -> None:
    src = save_tiny_model(tmp_path / "g", "gemma2")
    convert_checkpoint(src, tmp_path / "g-out", kv_heads=1)
    out = _load_dir(tmp_path / "g-out")
    assert "lm_head.weight" not in out and "model.embed_tokens.weight" in out
    src = save_tiny_model(tmp_path / "m", "mixtral")
    convert_checkpoint(src, tmp_path / "m-out", kv_heads=1)
    before, after = _load_dir(src), _load_dir(tmp_path / "m-out")
    experts = [k for k in before if "experts" in k]
    assert experts
    for name in experts:
        assert torch.equal(before[name], after[name])
    assert after["model.layers.1.self_attn.k_proj.weight"].shape == (16, 64)


@pytest.fixture
def llama_src(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "src", "llama", num_key_value_heads=4, max_shard_size="20KB")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kv_heads": 3}, ConfigError, "kv_heads=3 must divide heads=4; valid: 1, 2, 4"),
        ({"kv_heads": 8}, ConfigError, "kv_heads=8 exceeds the source's 4 KV heads; valid: 1, 2"),
        ({"kv_heads": 2, "heads": 8}, ConfigError, "heads=8 exceeds the source's 4 query heads"),
        ({"kv_heads": 2, "heads": 2}, ConfigError, "method 'mean' keeps the 4 query heads"),
        (
            {"kv_heads": 2, "dtype": "int4"},
            ConfigError,
            "invalid dtype 'int4'; valid: keep, bf16, fp16, fp32",
        ),
        ({"kv_heads": 2, "method": "nope"}, ConfigError, "unknown pooling method 'nope'"),
        ({"kv_heads": 2, "max_shard_size": "lots"}, ConfigError, "invalid shard size 'lots'"),
        (
            {"kv_heads": 2, "method": "mean", "calibration": "x.txt"},
            ConfigError,
            "method 'mean' uses no calibration data",
        ),
    ],
)
def test_bad_targets_fail_before_writing(
    llama_src: Path, tmp_path: Path, kwargs: dict, error: type, message: str
) -> None:
    digest = tree_digest(llama_src)
    with pytest.raises(error) as info:
        convert_checkpoint(llama_src, tmp_path / "out", **{"method": None, **kwargs})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    assert tree_digest(llama_src) == digest


def test_bad_sources_and_outputs_are_refused(llama_src: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputExistsError, match="overlaps the source"):
        convert_checkpoint(llama_src, llama_src / "inner", kv_heads=2)
    with pytest.raises(OutputExistsError, match="overlaps the source"):
        convert_checkpoint(llama_src, llama_src, kv_heads=2)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError, match="already exists: pass --overwrite"):
        convert_checkpoint(llama_src, tmp_path / "taken", kv_heads=2)
    convert_checkpoint(llama_src, tmp_path / "taken", kv_heads=2, overwrite=True)
    assert (tmp_path / "taken" / "gqa_retrofit.json").is_file()

    bloom = Path(shutil.copytree(llama_src, tmp_path / "bloom"))
    config = json.loads((bloom / "config.json").read_text())
    (bloom / "config.json").write_text(json.dumps({**config, "model_type": "bloom"}))
    with pytest.raises(
        UnsupportedFamilyError, match=r"'bloom' is not supported; supported: .*llama"
    ):
        convert_checkpoint(bloom, tmp_path / "o1", kv_heads=2)

    broken = Path(shutil.copytree(llama_src, tmp_path / "broken"))
    shard = sorted(broken.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ConversionError, match=f"shard '{shard.name}' is truncated"):
        convert_checkpoint(broken, tmp_path / "o2", kv_heads=2)
    shard.unlink()
    with pytest.raises(ConversionError, match=f"shard '{shard.name}' is missing"):
        convert_checkpoint(broken, tmp_path / "o3", kv_heads=2)

    gap = Path(shutil.copytree(llama_src, tmp_path / "gap"))
    index = json.loads((gap / INDEX_NAME).read_text())
    del index["weight_map"]["model.layers.1.self_attn.v_proj.weight"]
    (gap / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(
        ConversionError, match=r"tensor 'model\.layers\.1\.self_attn\.v_proj\.weight' is missing"
    ):
        convert_checkpoint(gap, tmp_path / "o4", kv_heads=2)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def test_bf16_source_pools_like_the_fp32_reference(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    src = save_tiny_model(tmp_path / "src", "mistral")
    convert_checkpoint(src, tmp_path / "bf16", kv_heads=2, dtype="bf16")  # same heads, cast
    convert_checkpoint(tmp_path / "bf16", tmp_path / "out", kv_heads=1)  # bf16 in, bf16 out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    _, expected = reference_conversion(model, 1)  # pools in fp32, casts back to bf16
    got = _load_dir(tmp_path / "out")
    assert all(t.dtype == torch.bfloat16 for t in got.values())
    for name, tensor in got.items():
        assert torch.equal(tensor, expected[name]), name
