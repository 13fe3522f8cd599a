"""The training recipe's device and dtype handling: student and teacher dtypes, --device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gqa_retrofit.errors import ConfigError, TrainingError
from gqa_retrofit.training import TrainingRecipe, TrainOptions, train
from gqa_retrofit.training.loop import launch_device


def _opts(model: Path, out: Path, corpus: Path, **kw) -> TrainOptions:
    base = dict(
        model=str(model),
        out=str(out),
        train_data=[str(corpus / "*.txt")],
        seq_len=32,
        batch_size=2,
        train_steps=2,
        warmup=1,
    )
    base.update(kw)
    return TrainOptions.from_dict(base)


def test_teacher_in_bf16_without_gradients_student_in_fp32(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    recipe = TrainingRecipe(
        _opts(tiny_lm, tmp_path / "out", corpus_dir, teacher=str(tiny_lm), teacher_dtype="bf16")
    )
    recipe.setup()
    assert {p.dtype for p in recipe.teacher.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in recipe.teacher.parameters())
    assert {p.dtype for p in recipe.model.parameters()} == {torch.float32}
    assert recipe.memory.teacher_bytes * 2 == recipe.memory.student_bytes
    recipe.resume()
    recipe.t_start, recipe.tokens_at_start = 0.0, 0
    record = recipe.train_step(1)
    assert record["kl"] > 0 and torch.isfinite(torch.tensor(record["loss"]))


def test_report_records_device_and_resolved_dtypes(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    report = train(_opts(tiny_lm, tmp_path / "out", corpus_dir, teacher=str(tiny_lm), device="cpu"))
    # auto teacher dtype = the teacher checkpoint's own (the tiny checkpoint is fp32)
    assert report.device == "cpu"
    assert report.dtypes == {"student": "fp32", "teacher": "fp32"}
    assert report.record()["dtypes"] == {"student": "fp32", "teacher": "fp32"}


def test_pure_bf16_student(tiny_lm: Path, corpus_dir: Path, tmp_path: Path) -> None:
    report = train(_opts(tiny_lm, tmp_path / "out", corpus_dir, dtype="bfloat16"))
    assert report.dtypes == {"student": "bf16"}


@pytest.mark.parametrize("name", ["dtype", "teacher_dtype"])
def test_unknown_dtype_is_refused_naming_the_flag(name: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as info:
        TrainOptions(model="m", out="o", train_data=["d"], **{name: "int4"}).validate()
    flag = name.replace("_", "-")
    assert str(info.value) == (f"--{flag} 'int4' is invalid: choose one of auto, bf16, fp16, fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_unavailable_device_is_refused_before_any_model_loads(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"^device 'cuda' is not available"):
        train(_opts(tiny_lm, tmp_path / "out", corpus_dir, device="cuda"))
    assert not (tmp_path / "out").exists()


def test_pinned_gpu_under_a_multi_process_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TrainingError) as info:
        launch_device("cuda:1")
    assert str(info.value) == (
        "--device 'cuda:1' pins one GPU but the launch runs 2 processes: use --device auto "
        "(each process takes its local GPU)"
    )
    assert launch_device("auto") == torch.device("cuda", 0) and chosen == []
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launch_device("cuda:1") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 1)]
