"""The training memory plan: exact parts against what torch really holds, the dry-run verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.cli.main import main
from gqa_retrofit.errors import ConfigError
from gqa_retrofit.training.memory_plan import (
    PlanSetup,
    TrainingShape,
    activation_bytes,
    parse_memory,
    plan_memory,
)
from gqa_retrofit.training.modeling import set_trainable
from tiny_models import tiny_model

CONFIGS = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one forward pass (storages counted once,
    parameters excluded), read with torch's own saved-tensor hooks."""
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            seen[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, use_cache=False)
    return sum(seen.values())


@pytest.mark.parametrize("family", ["llama", "qwen3"])
@pytest.mark.parametrize("trainable", ["attention", "all", "lora"])
@pytest.mark.parametrize(("layers", "batch", "seq"), [(2, 2, 32), (3, 1, 48)])
def test_activations_are_exactly_what_autograd_keeps(
    family: str, trainable: str, layers: int, batch: int, seq: int
) -> None:
    model = tiny_model(family, num_hidden_layers=layers).requires_grad_(False)  # as loaded
    shape = TrainingShape.from_config(model.config)
    trained = set_trainable(model, trainable)
    ids = torch.randint(0, 128, (batch, seq), generator=torch.Generator().manual_seed(0))
    setup = PlanSetup(batch_size=batch, seq_len=seq, trainable=trainable)
    assert activation_bytes(shape, setup) == saved_bytes(trained, ids)


def test_parameter_counts_of_the_real_llama_configs() -> None:
    eight = TrainingShape.from_path(CONFIGS / "llama-3.1-8b")
    seventy = TrainingShape.from_path(CONFIGS / "llama-3.1-70b" / "config.json")
    assert eight.params == 8_030_261_248  # Llama-3.1-8B's published count
    assert seventy.params == 70_553_706_496
    # q, k, v, o per layer: 4096*(4096 + 1024 + 1024) + 4096*4096
    assert eight.attention_params == 32 * (4096 * 6144 + 4096 * 4096)
    assert eight.layer_params == 4096 * 6144 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096


def test_weights_gradients_optimizer_and_teacher_bytes() -> None:
    shape = TrainingShape.from_path(CONFIGS / "llama-3.1-8b")
    plan = plan_memory(
        shape,
        PlanSetup(devices=8, fsdp=True, teacher_dtype="bf16", seq_len=128, batch_size=1),
    )
    assert plan.parts["weights"] == shape.params * 4 // 8
    assert plan.parts["gradients"] == shape.attention_params * 4 // 8
    assert plan.parts["optimizer"] == 2 * shape.attention_params * 4 // 8
    assert plan.parts["teacher"] == shape.params * 2 // 8
    assert plan.parts["fsdp_buffers"] == 2 * shape.layer_params * (4 + 2)
    tv = 128 * 128_256
    assert plan.parts["logits"] == tv * (4 + 8) + tv * 2 + tv * 8


def _dry_run(capsys: pytest.CaptureFixture[str], config: str, *extra: str) -> dict:
    code = main(
        [
            "train",
            str(CONFIGS / config),
            "--teacher",
            str(CONFIGS / config),
            "--seq-len",
            "8192",
            "--batch-size",
            "1",
            "--dry-run",
            "--plan-devices",
            "8",
            "--device-memory",
            "80GiB",
            *extra,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out) if "--json" in extra else {}


def test_dry_run_8b_on_8_x_80gb_fits_with_fsdp(capsys: pytest.CaptureFixture[str]) -> None:
    data = _dry_run(capsys, "llama-3.1-8b", "--json")
    assert not data["plan"]["fits"]  # fp32 compute, unsharded: does not fit
    assert [t["added"] for t in data["tried"]] == ["bf16 mixed precision", "FSDP2 sharding"]
    assert data["tried"][-1]["fits"]
    assert (
        data["fits_with"][-2:]
        == [
            "--mixed-precision bf16",
            "--teacher-dtype bf16",
        ]
        or "FSDP2 over 8 devices (examples/accelerate/fsdp.yaml)" in data["fits_with"]
    )
    _dry_run(capsys, "llama-3.1-8b")
    text = capsys.readouterr().out
    assert "does NOT fit" in text.splitlines()[0]
    assert text.splitlines()[-1].startswith("fits with: --trainable attention --batch-size 1")


def test_dry_run_70b_names_what_makes_it_fit(capsys: pytest.CaptureFixture[str]) -> None:
    data = _dry_run(capsys, "llama-3.1-70b", "--json")
    added = [t["added"] for t in data["tried"]]
    assert added[-1] == "LoRA adapters instead of the attention weights"
    assert not any(t["fits"] for t in data["tried"][:-1]) and data["tried"][-1]["fits"]
    assert "--trainable lora" in data["fits_with"]


def test_bad_device_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_memory("80GiB") == 80 * 2**30 and parse_memory("1.5GB") == 1_500_000_000
    with pytest.raises(ConfigError, match=r"^--device-memory 'lots' is invalid: use a size"):
        parse_memory("lots")
    code = main(["train", str(CONFIGS / "llama-3.1-8b"), "--dry-run", "--device-memory", "-1"])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
