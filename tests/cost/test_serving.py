"""Per-device cache with tensor / decode-context parallelism (vLLM's replication rule) and
KV-cache dtypes with their scale overhead."""

from __future__ import annotations

import pytest

from gqa_retrofit.cost import estimate, read_config
from gqa_retrofit.cost.formulas import (
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    per_device_cache_bytes,
)
from gqa_retrofit.cost.layer_plan import cache_layers
from gqa_retrofit.cost.serving import kv_dtype, replication_warning
from gqa_retrofit.errors import ConfigError
from tests.cost.test_params import FIXTURES, load_fixture

CONTEXT = 4096  # divisible by every dcp below


def _llama(kv_heads: int) -> dict:
    return {**load_fixture("meta-llama-3-8b"), "num_key_value_heads": kv_heads}


# (n_kv, tp, dcp, copies of each KV head across the tp devices)
TABLE = [
    (8, 1, 1, 1),
    (8, 2, 1, 1),
    (8, 8, 1, 1),
    (8, 16, 1, 2),
    (8, 16, 2, 2),
    (8, 32, 4, 4),
    (4, 8, 1, 2),
    (4, 8, 2, 2),
    (2, 8, 4, 4),
    (1, 8, 1, 8),
    (1, 8, 8, 8),
    (1, 32, 8, 32),
    (32, 32, 1, 1),
]


@pytest.mark.parametrize(("n_kv", "tp", "dcp", "replicas"), TABLE)
def test_per_device_kv_follows_vllm_replication(
    n_kv: int, tp: int, dcp: int, replicas: int
) -> None:
    shape = read_config(_llama(n_kv))
    total = kv_cache_bytes(shape, CONTEXT)
    # vLLM: each device holds max(1, n_kv / tp) heads; dcp splits the cached tokens
    expected = total * replicas // tp // dcp
    assert per_device_cache_bytes(shape, CONTEXT, tp=tp, dcp=dcp) == expected
    assert expected == total // min(tp, n_kv) // dcp


def test_mla_latent_is_replicated_on_every_device() -> None:
    shape = read_config(load_fixture("deepseek-v3"))
    total = kv_cache_bytes(shape, CONTEXT)
    assert per_device_cache_bytes(shape, CONTEXT, tp=8) == total
    assert per_device_cache_bytes(shape, CONTEXT, tp=8, dcp=8) == total // 8


def test_one_kv_head_retrofit_needs_dcp_to_keep_its_saving() -> None:
    """A 1-KV-head model at TP=8 holds as much KV per device as an 8-KV-head one."""
    mqa, gqa8 = read_config(_llama(1)), read_config(_llama(8))
    assert per_device_cache_bytes(mqa, CONTEXT, tp=8) == per_device_cache_bytes(gqa8, CONTEXT, tp=8)
    assert 8 * per_device_cache_bytes(mqa, CONTEXT, tp=8, dcp=8) == per_device_cache_bytes(
        gqa8, CONTEXT, tp=8
    )
    warning = replication_warning(cache_layers(mqa), 8, 1)
    assert warning.startswith("1 KV head(s) at --tp 8: vLLM replicates each KV head 8 times")
    assert replication_warning(cache_layers(mqa), 8, 8) == ""
    assert replication_warning(cache_layers(gqa8), 8, 1) == ""


@pytest.mark.parametrize(
    ("n_kv", "tp", "dcp", "message"),
    [
        (8, 0, 1, "--tp must be a positive integer, got 0"),
        (8, 5, 1, "--tp 5 does not divide the 32 attention heads"),
        (8, 8, 3, "--dcp 3 must divide --tp 8"),
        (8, 8, 2, "--dcp 2 exceeds the KV replication"),
        (4, 2, 1, None),
    ],
)
def test_bad_parallel_degrees(n_kv: int, tp: int, dcp: int, message: str | None) -> None:
    shape = read_config(_llama(n_kv))
    if message is None:
        assert per_device_cache_bytes(shape, CONTEXT, tp=tp, dcp=dcp) > 0
        return
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        per_device_cache_bytes(shape, CONTEXT, tp=tp, dcp=dcp)


def test_kv_dtypes_and_scale_overhead() -> None:
    shape = read_config(load_fixture("meta-llama-3-8b"))  # 32 layers x 2 x 8 heads x 128
    vectors = 32 * 2 * 8
    assert kv_cache_bytes_per_token(shape, "bf16") == vectors * 256
    for name in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        assert kv_cache_bytes_per_token(shape, name) == vectors * 128
    # one fp16 scale per 32 values: 128 values -> 4 scales = 8 bytes per vector
    assert kv_cache_bytes_per_token(shape, "int8") == vectors * (128 + 8)
    assert kv_cache_bytes_per_token(shape, "int4") == vectors * (64 + 8)
    assert kv_dtype("int4").description.endswith("(q4_0 layout, 4.5 bits/value)")
    with pytest.raises(ConfigError, match="unknown KV dtype 'int3'; valid: fp32, bf16"):
        kv_dtype("int3")


def test_report_carries_serving_assumptions() -> None:
    report = estimate(FIXTURES / "smollm2-135m.json", contexts=(3072,), tp=9, dcp=3, batch=2)
    entry = report.to_dict()
    serving = entry["serving"]
    assert (serving["tp"], serving["dcp"], serving["kv_replicas"]) == (9, 3, 3)
    assert "warning" not in serving
    context = entry["per_context"][0]
    # 3 KV heads at tp 9: each device one head (a third of the KV), tokens split 3 ways
    assert context["per_device_cache_bytes"] == context["kv_cache_bytes"] // 3 // 3
    assert context["kv_cache_bytes"] == 2 * 23_040 * 3072
