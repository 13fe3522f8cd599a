"""The streaming converter on the embedded SmolLM2-135M (9 query / 3 KV heads), integration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.conversion.verify import verify_checkpoint
from tests.conversion._convert_helpers import reference_conversion

pytestmark = pytest.mark.integration


def test_smollm2_to_one_kv_head_equals_in_memory_conversion(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from gqa_retrofit.assets import default_model_dir

    src = default_model_dir()
    mtimes = {p.name: p.stat().st_mtime_ns for p in src.iterdir()}
    out = tmp_path / "smollm2-kv1"
    report = convert_checkpoint(src, out, kv_heads=1, max_shard_size="200MB")
    assert (report.heads_before, report.kv_heads_before) == (9, 3)
    assert (report.heads_after, report.kv_heads_after) == (9, 1)
    assert len(report.files) > 1  # re-sharded from the single source file

    model = AutoModelForCausalLM.from_pretrained(src)
    _, expected = reference_conversion(model, 1)
    got: dict[str, torch.Tensor] = {}
    for file in out.glob("*.safetensors"):
        got.update(load_file(file))
    assert set(got) == set(expected) - {"lm_head.weight"}  # tied: no lm_head stored
    for name, tensor in got.items():
        assert torch.equal(tensor, expected[name]), name
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (src / name).read_bytes()

    report_v = verify_checkpoint(out)
    assert report_v.ok, report_v.problems
    assert {p.name: p.stat().st_mtime_ns for p in src.iterdir()} == mtimes
