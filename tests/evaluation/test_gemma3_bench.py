"""The decode benchmark on a second real family: Gemma 3 270M's measured KV cache (sliding
windows included) equals the estimator's prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from gqa_retrofit.evaluation.bench import benchmark_decode

pytestmark = pytest.mark.integration


def test_bench_measures_the_predicted_kv_cache(gemma3_model: Path) -> None:
    rows = benchmark_decode(
        [str(gemma3_model)],
        contexts=(600,),  # past the 512-token window of 15 of the 18 layers
        new_tokens=4,
        repeats=1,
        dtype="fp32",
        device="cpu",
        warmup=False,
    )
    (row,) = rows
    assert row["context"] == 600
    assert row["kv_cache_bytes"] == row["predicted_kv_cache_bytes"]
    assert row["decode_tokens_per_second"] > 0 and row["prefill_seconds"] > 0
