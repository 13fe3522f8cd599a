"""A real two-process data-parallel run (torchrun launcher, gloo on CPU) against one process.

Tolerance: both runs see exactly the same blocks per step (explicit global data positions), so
they differ only in floating-point summation order: two per-process mean gradients all-reduced
vs one mean over the doubled batch (about 1e-7 relative). Step losses therefore agree to 1e-5
relative, and after 6 AdamW steps at lr 1e-2 every weight agrees to 1e-4 absolute, while the
weights themselves moved by up to ~5e-2 from their initial values. Any real mismatch (a
process training on the wrong shard, double counting, unsynchronised gradients) shows up as
differences of 1e-2 and more, both in the step-1 loss and in the weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gqa_retrofit.training import TrainOptions, train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_ddp_matches_one_process(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    common = [
        "--train-data",
        str(corpus_dir / "*.txt"),
        "--seq-len",
        "32",
        "--train-steps",
        "6",
        "--trainable",
        "all",
        "--lr",
        "1e-2",
        "--warmup",
        "1",
        "--save-every",
        "3",
    ]
    env = dict(
        os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", GQA_RETROFIT_QUIET="1"
    )
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "examples" / "accelerate" / "ddp_cpu.yaml"),
        "--main_process_port",
        str(_free_port()),
        "-m",
        "gqa_retrofit.cli.main",
        "--quiet",
        "train",
        str(tiny_lm),
        str(tmp_path / "ddp"),
        "--batch-size",
        "1",
        *common,
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "training_state.json").read_text())
    assert state["complete"] and state["report"]["num_processes"] == 2
    assert state["report"]["tokens"] == 6 * 2 * 32

    single = train(
        TrainOptions.from_dict(
            dict(
                model=str(tiny_lm),
                out=str(tmp_path / "single"),
                train_data=[str(corpus_dir / "*.txt")],
                seq_len=32,
                train_steps=6,
                trainable="all",
                lr=1e-2,
                warmup=1,
                save_every=3,
                batch_size=2,
            )
        )
    )
    ddp_losses = [
        json.loads(x)["loss"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    ]
    assert ddp_losses == pytest.approx(single.losses, rel=1e-5)
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    start = load_file(str(tiny_lm / "model.safetensors"))
    assert set(a) == set(b)
    moved = max(float((b[k] - start[k]).abs().max()) for k in b)
    assert moved > 1e-2
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-4, msg=key)
