"""Parameter counts: equal to a meta-device instantiation of the HF class, and to the published
totals of well-known models (config fixtures written from their published config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cost import estimate, param_counts, read_config
from gqa_retrofit.cost.loading import meta_param_count
from tests.cost.tiny_families import ALL_TINY, tiny_estimator_config

FIXTURES = Path(__file__).parent / "fixtures"
# the 2025-2026 fixtures are checked at full widths on a layer prefix in test_real_configs.py
NEWER = {
    "gpt-oss-20b",
    "smollm3-3b",
    "minimax-m2",
    "mimo-v2-flash",
    "deepseek-v3.2",
    "kimi-k2-instruct",
    "kimi-k2.5",
    "glm-5",
    "qwen3-next-80b-a3b",
    "qwen3.5-35b-a3b",
    "nemotron-nano-9b-v2",
    "llama-4-scout-17b-16e",
    "qwen3-vl-8b",
    "gemma-4-31b-it",
}
FULL_SIZE = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem not in NEWER)

# Published parameter counts (model cards / safetensors metadata of the Hub repos).
PUBLISHED_TOTAL = {
    "llama-2-7b": 6_738_415_616,
    "meta-llama-3-8b": 8_030_261_248,
    "llama-3.2-1b": 1_235_814_400,
    "smollm2-135m": 134_515_008,
    "mistral-7b-v0.1": 7_241_732_096,
    "mixtral-8x7b-v0.1": 46_702_792_704,
    "qwen2.5-7b": 7_615_616_512,
    "qwen3-8b": 8_190_735_360,
    "qwen3-30b-a3b": 30_532_122_624,
    "gemma-2-9b": 9_241_705_984,
    "gemma-3-1b-pt": 999_885_952,
    "phi-3-mini-4k-instruct": 3_821_079_552,
    "gpt2": 124_439_808,
    "pythia-160m": 162_322_944,
    "falcon-7b": 6_921_720_704,
    "opt-125m": 125_239_296,
}


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _meta_config(config: dict) -> dict:
    # multimodal configs: the estimator costs the text decoder, so compare with that class
    return config.get("text_config", config) if config["model_type"] == "gemma3" else config


@pytest.mark.parametrize("name", ALL_TINY)
def test_tiny_param_count_equals_meta_instantiation(name: str) -> None:
    config = tiny_estimator_config(name).to_dict()
    assert param_counts(read_config(config)).total == meta_param_count(config)


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_param_count_equals_meta_instantiation(name: str) -> None:
    config = _meta_config(load_fixture(name))
    if config["model_type"] == "deepseek_v3":
        # full widths, fewer layers (3 dense + 2 MoE): the meta build of 61 layers takes ~10 s
        config = {**config, "num_hidden_layers": 5}
    assert param_counts(read_config(config)).total == meta_param_count(config)


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL))
def test_published_parameter_totals(name: str) -> None:
    assert estimate(FIXTURES / f"{name}.json").params.total == PUBLISHED_TOTAL[name]


def test_published_moe_active_and_mla_totals() -> None:
    mixtral = estimate(FIXTURES / "mixtral-8x7b-v0.1.json").params
    assert round(mixtral.active / 1e9, 1) == 12.9  # "12.9B active parameters"
    qwen_moe = estimate(FIXTURES / "qwen3-30b-a3b.json").params
    assert 3.3e9 <= qwen_moe.active < 3.4e9  # "3.3B activated"
    deepseek = estimate(FIXTURES / "deepseek-v3.json").params
    # "671B total parameters, 37B activated" (the HF class has no MTP module)
    assert round(deepseek.total / 1e9) == 671
    assert 37e9 <= deepseek.active < 38e9


def test_llama3_8b_headline_numbers() -> None:
    report = estimate(FIXTURES / "meta-llama-3-8b.json")
    assert report.params.total == 8_030_261_248
    assert report.kv_cache_bytes_per_token == 131_072  # 2 * 32 layers * 8 heads * 128 * 2 B
    assert report.params.embedding == 2 * 128_256 * 4096
    assert report.per_context[0].kv_cache_bytes == 131_072 * 4096


def test_published_kv_bytes_per_token() -> None:
    expected = {
        "llama-2-7b": 524_288,  # MHA: 2 * 32 * 32 * 128 * 2
        "mistral-7b-v0.1": 131_072,
        "qwen2.5-7b": 57_344,  # 2 * 28 * 4 * 128 * 2
        "gemma-2-9b": 344_064,  # 2 * 42 * 8 * 256 * 2
        "deepseek-v3": 70_272,  # 61 * (512 + 64) * 2: the MLA latent
        "falcon-7b": 8_192,  # MQA: 2 * 32 * 1 * 64 * 2
    }
    for name, value in expected.items():
        assert estimate(FIXTURES / f"{name}.json").kv_cache_bytes_per_token == value, name
