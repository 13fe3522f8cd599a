"""Decode benchmark on tiny real models: measured cache bytes, prediction, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.cli.main import main
from gqa_retrofit.errors import ConfigError
from gqa_retrofit.evaluation.bench import benchmark_decode, cache_bytes
from tiny_models import save_tiny_model, tiny_model

# tiny llama: 2 layers, 4 query heads of 16, fp32
LAYERS, HEAD_DIM, FP32 = 2, 16, 4


def expected_bytes(kv_heads: int, tokens: int, batch: int) -> int:
    """2 (K and V) · L · B · S · n_kv · d_h · bytes, the closed form of a full-attention cache."""
    return 2 * LAYERS * batch * tokens * kv_heads * HEAD_DIM * FP32


def test_measured_bytes_equal_prediction_and_closed_form() -> None:
    models = [tiny_model("llama"), tiny_model("llama", num_key_value_heads=1)]
    results = benchmark_decode(
        models, contexts=(16, 40), new_tokens=3, batch=2, repeats=2, names=["kv2", "kv1"]
    )
    assert [(r["model"], r["context"]) for r in results] == [
        ("kv2", 16),
        ("kv1", 16),
        ("kv2", 40),
        ("kv1", 40),
    ]
    for row in results:
        kv = 2 if row["model"] == "kv2" else 1
        assert row["cache_tokens"] == row["context"] + 3
        assert row["kv_cache_bytes"] == expected_bytes(kv, row["context"] + 3, batch=2)
        assert row["predicted_kv_cache_bytes"] == row["kv_cache_bytes"]
        assert row["dtype"] == "fp32"
        assert len(row["decode_tokens_per_second_runs"]) == 2
        assert (
            row["decode_tokens_per_second_min"]
            <= row["decode_tokens_per_second"]
            <= row["decode_tokens_per_second_max"]
        )
        assert row["prefill_seconds"] > 0
    # 1 KV head caches exactly half of 2 KV heads.
    assert results[1]["kv_cache_bytes"] * 2 == results[0]["kv_cache_bytes"]


def test_sliding_window_cache_matches_prediction() -> None:
    # gemma2 tiny: sliding window 8 on alternate layers, so the cache is not linear in context.
    results = benchmark_decode(
        [tiny_model("gemma2")], contexts=(30,), new_tokens=2, repeats=1, warmup=False
    )
    row = results[0]
    assert row["kv_cache_bytes"] < 2 * 2 * 32 * 2 * 16 * 4  # smaller than two full layers
    assert row["predicted_kv_cache_bytes"] == row["kv_cache_bytes"]


def test_reused_prefill_decodes_from_the_same_state() -> None:
    models = [tiny_model("llama"), tiny_model("gemma2")]
    results = benchmark_decode(
        models, contexts=(20,), new_tokens=3, repeats=3, prefill_repeats=1, names=["l", "g"]
    )
    llama, gemma = results
    # llama: one prefill, three decodes from the cropped cache, same bytes every time
    assert len(llama["prefill_seconds_runs"]) == 1
    assert len(llama["decode_tokens_per_second_runs"]) == 3
    assert llama["kv_cache_bytes"] == expected_bytes(2, 23, batch=1)
    # gemma2 has sliding layers that cannot be cropped back: it prefills every time
    assert len(gemma["prefill_seconds_runs"]) == 3
    assert gemma["predicted_kv_cache_bytes"] == gemma["kv_cache_bytes"]
    with pytest.raises(ConfigError, match="prefill_repeats must be a positive integer, got 0"):
        benchmark_decode(models[:1], prefill_repeats=0)


def test_cache_bytes_counts_every_layer() -> None:
    from transformers import DynamicCache

    model = tiny_model("llama")
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.zeros(1, 5, dtype=torch.long), cache=cache, use_cache=True)
    assert cache_bytes(cache) == expected_bytes(2, 5, batch=1)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no models given"):
        benchmark_decode([])
    with pytest.raises(ConfigError, match="new_tokens must be a positive integer, got 0"):
        benchmark_decode([tiny_model("llama")], new_tokens=0)
    with pytest.raises(ConfigError, match="unknown dtype 'int8'"):
        benchmark_decode([tiny_model("llama")], dtype="int8")


def test_cli_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save_tiny_model(tmp_path / "a", "llama")
    b = save_tiny_model(tmp_path / "b", "llama", num_key_value_heads=1)
    code = main(
        [
            "--quiet",
            "bench",
            str(a),
            str(b),
            "--context",
            "24",
            "--new-tokens",
            "2",
            "--repeats",
            "1",
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in data["results"]] == [str(a), str(b)]
    for row, kv in zip(data["results"], (2, 1)):
        for key in (
            "model",
            "context",
            "kv_cache_bytes",
            "predicted_kv_cache_bytes",
            "prefill_seconds",
            "decode_tokens_per_second",
        ):
            assert key in row
        assert row["kv_cache_bytes"] == expected_bytes(kv, 26, batch=1)
        assert row["predicted_kv_cache_bytes"] == row["kv_cache_bytes"]


def test_cli_table_and_bad_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save_tiny_model(tmp_path / "a", "llama")
    assert (
        main(["-q", "bench", str(a), "--context", "8", "--new-tokens", "1", "--repeats", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "| model | context | KV bytes | predicted | prefill s | decode tok/s |"
    )
    assert f"{expected_bytes(2, 9, 1):,}" in out
    missing = tmp_path / "missing"
    assert main(["-q", "bench", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err


def test_dtype_and_device_of_models_loaded_here(tmp_path: Path) -> None:
    a = save_tiny_model(tmp_path / "a", "llama")
    rows = benchmark_decode(
        [a], contexts=(8,), new_tokens=2, repeats=1, dtype="bfloat16", device="cpu"
    )
    assert (rows[0]["dtype"], rows[0]["device"]) == ("bf16", "cpu")
    assert rows[0]["kv_cache_bytes"] == expected_bytes(2, 10, batch=1) // 2  # 2 bytes per value
    assert rows[0]["peak_device_memory_bytes"] is None  # the CPU keeps no peak counter
    auto = benchmark_decode([a], contexts=(8,), new_tokens=1, repeats=1, warmup=False)
    assert (auto[0]["dtype"], auto[0]["device"]) == ("fp32", "cpu")  # the checkpoint's dtype


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_unavailable_device_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^device 'cuda' is not available"):
        benchmark_decode([tmp_path / "never-read"], device="cuda")
    with pytest.raises(ConfigError, match=r"^unknown device 'tpu'"):
        benchmark_decode([tmp_path / "never-read"], device="tpu")


def test_fp16_overflow_of_the_checkpoints_values_is_refused(tmp_path: Path) -> None:
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] = 1e5
    model.save_pretrained(tmp_path / "big")
    with pytest.raises(ConfigError) as info:
        benchmark_decode([tmp_path / "big"], dtype="fp16", device="cpu")
    assert str(info.value) == (
        "dtype 'fp16' cannot hold the checkpoint's values: model.layers.1.mlp.down_proj.weight "
        "overflows fp16's largest 65504 (fp32 checkpoint); use bf16, fp32"
    )


def test_timings_synchronise_the_device_and_rows_carry_its_peak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The accelerator path on CPU: every timed region is bracketed by synchronize(device), the
    peak counter is reset before each run and its largest reading lands in the row."""
    from gqa_retrofit.evaluation import bench

    events: list[str] = []
    readings = iter([300, 700, 500, 100])
    monkeypatch.setattr(bench, "synchronize", lambda device: events.append(f"sync {device}"))
    monkeypatch.setattr(bench, "reset_peak_memory", lambda device: events.append("reset"))
    monkeypatch.setattr(bench, "peak_memory_bytes", lambda device: next(readings))
    rows = benchmark_decode(
        [tiny_model("llama")], contexts=(8, 12), new_tokens=2, repeats=2, warmup=False
    )
    assert [r["peak_device_memory_bytes"] for r in rows] == [700, 500]
    # per run: reset, then prefill (sync before and after) and decode (sync before and after)
    assert events == ["reset", *["sync cpu"] * 4] * 4
