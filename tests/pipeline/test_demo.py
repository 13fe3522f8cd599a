"""The demo's pieces on the real embedded model, with a tiny budget (integration)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main
from gqa_retrofit.pipeline.demo import (
    DemoSummary,
    best_method,
    demo,
    format_summary,
    method_needs_calibration,
)

# SmolLM2-135M: 30 layers, 3 KV heads of 64; bf16 cache = 2 (K, V) * 30 * 3 * 64 * 2 bytes
KV_PER_TOKEN = 2 * 30 * 3 * 64 * 2


@pytest.mark.integration
def test_demo_pieces_on_the_real_model(tmp_path: Path) -> None:
    from gqa_retrofit.assets import default_corpus

    out = tmp_path / "demo-output"
    # the first 40,000 characters of Emma (a training novel) keep tokenizing cheap
    emma = next(p for p in default_corpus(ood=False).train if p.name == "emma.txt")
    train_text = tmp_path / "emma_start.txt"
    train_text.write_text(emma.read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    summary = demo(
        out,
        train_steps=2,
        train={"seq_len": 64, "batch_size": 1, "warmup": 0, "save_every": 0},
        # the data-aware default conversion has its own real-model test in tests/conversion;
        # mean pooling keeps this end-to-end check of the demo's wiring within about a minute
        method="mean",
        eval_windows=1,
        eval_seq_len=64,
        bench_contexts=(64,),
        bench_repeats=1,
        bench_new_tokens=2,
        continuation_tokens=4,
        train_data=[str(train_text)],
    )
    assert isinstance(summary, DemoSummary)
    assert set(summary.perplexity) == {"original", "converted", "trained"}
    assert all(math.isfinite(v) and v > 1 for v in summary.perplexity.values())
    assert summary.kv_bytes_per_token == {"original": KV_PER_TOKEN, "retrofit": KV_PER_TOKEN // 3}
    assert summary.kv_bytes["original"] == {
        "8K": KV_PER_TOKEN * 8192,
        "128K": KV_PER_TOKEN * 131072,
    }
    assert summary.kv_bytes["retrofit"]["128K"] * 3 == summary.kv_bytes["original"]["128K"]
    assert set(summary.decode_tokens_per_second) == {"original", "retrofit"}
    assert summary.bench_context == 64
    assert set(summary.continuations) == {"original", "converted", "trained"}
    assert all(text for text in summary.continuations.values())  # may be only newlines

    final = Path(summary.final_model)
    assert final == out / "SmolLM2-135M-Instruct-kv1"
    assert json.loads((final / "config.json").read_text())["num_key_value_heads"] == 1
    assert (final / "README.md").is_file() and Path(summary.report).is_file()
    assert json.loads((out / "summary.json").read_text())["perplexity"] == summary.perplexity

    text = format_summary(summary)
    assert f"bytes per token         {KV_PER_TOKEN:>12,}  {KV_PER_TOKEN // 3:>12,}" in text
    assert "[trained]" in text and str(final / "README.md") in text


@pytest.mark.integration
def test_demo_dry_run_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo-plan"
    assert main(["-q", "demo", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    stages = [line.split()[1] for line in text.splitlines()[2:-1]]
    assert stages == [
        "estimate",
        "convert",
        "eval_zero_shot",
        "probe_zero_shot",
        "train",
        "eval_trained",
        "probe_trained",
        "bench",
        "report",
        "card",
        "push",
    ]
    if method_needs_calibration(best_method()):
        assert "with calibration" in text
    assert "push             skipped" in text
