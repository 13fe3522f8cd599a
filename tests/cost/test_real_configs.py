"""Real configs of 2025-2026 models (tests/cost/fixtures, provenance in its README.md): the
estimator reads each one, and its parameter count equals a meta-device instantiation of the
transformers class at full widths with the layer stack cut to a prefix that still holds every
layer kind (layers add up, so the prefix checks every per-layer formula)."""

from __future__ import annotations

import copy

import pytest
import torch

from gqa_retrofit.cost import estimate, param_counts, read_config
from gqa_retrofit.cost.loading import meta_param_count
from tests.cost.test_params import FIXTURES, NEWER, load_fixture

# fixture -> layers kept (a prefix with every layer kind of the model)
PREFIX = {
    "gpt-oss-20b": 2,
    "smollm3-3b": 4,
    "minimax-m2": 1,
    "mimo-v2-flash": 2,
    "deepseek-v3.2": 4,
    "kimi-k2-instruct": 2,
    "kimi-k2.5": 2,
    "glm-5": 4,
    "qwen3-next-80b-a3b": 4,
    "qwen3.5-35b-a3b": 4,
    "nemotron-nano-9b-v2": 16,
    "llama-4-scout-17b-16e": 4,
    "qwen3-vl-8b": 1,
    "gemma-4-31b-it": 6,
}
assert set(PREFIX) == NEWER
_PER_LAYER_LISTS = ("layer_types", "mlp_layer_types", "no_rope_layers", "hybrid_layer_pattern")


def _prefix(config: dict, layers: int) -> dict:
    config = copy.deepcopy(config)
    if "text_config" in config:
        config["text_config"] = _prefix(config["text_config"], layers)
        return config
    config["num_hidden_layers"] = layers
    for key in (*_PER_LAYER_LISTS, "moe_layer_freq"):
        if isinstance(config.get(key), list):
            config[key] = config[key][:layers]
    if isinstance(config.get("moe_layers"), list):
        config["moe_layers"] = [i for i in config["moe_layers"] if i < layers]
    if isinstance(config.get("hybrid_override_pattern"), str):
        config["hybrid_override_pattern"] = config["hybrid_override_pattern"][:layers]
    return config


def _decoder_meta_params(config: dict) -> int:
    """Meta-device parameters of the text decoder the estimator costs (with its head)."""
    from transformers import AutoConfig, AutoModel

    text = config.get("text_config")
    if text is None:
        return meta_param_count(config)
    text = {**text, "model_type": "deepseek_v3"} if text["model_type"] == "kimi_k2" else text
    if text["model_type"] != "qwen3_vl_text":
        tie = text.get("tie_word_embeddings", config.get("tie_word_embeddings"))
        return meta_param_count({**text, "tie_word_embeddings": tie})
    hf_config = AutoConfig.for_model(**text)
    with torch.device("meta"):
        model = AutoModel.from_config(hf_config)
    head = 0 if config["tie_word_embeddings"] else hf_config.vocab_size * hf_config.hidden_size
    return sum(p.numel() for p in model.parameters()) + head


@pytest.mark.parametrize("name", sorted(PREFIX))
def test_real_config_params_equal_meta_instantiation(name: str) -> None:
    config = _prefix(load_fixture(name), PREFIX[name])
    if config["model_type"] == "kimi_k2":
        config = {**config, "model_type": "deepseek_v3"}  # transformers builds it as that
    assert param_counts(read_config(config)).total == _decoder_meta_params(config)


def test_smollm3_ties_its_embeddings_like_transformers() -> None:
    """SmolLM3-3B's config omits tie_word_embeddings; transformers ties (3.08B, not 3.34B)."""
    assert "tie_word_embeddings" not in load_fixture("smollm3-3b")
    assert estimate(FIXTURES / "smollm3-3b.json").params.total == 3_075_098_624


@pytest.mark.parametrize(
    ("name", "model_type", "note"),
    [
        ("kimi-k2-instruct", "kimi_k2", "read as deepseek_v3 (architectures names Deepseek"),
        ("kimi-k2.5", "kimi_k2", "read as deepseek_v3 (as transformers does)"),
        ("llama-4-scout-17b-16e", "llama4_text", None),
        ("qwen3.5-35b-a3b", "qwen3_5_moe_text", None),
        ("gemma-4-31b-it", "gemma4_text", None),
    ],
)
def test_wrappers_and_aliases_are_read_with_a_note(
    name: str, model_type: str, note: str | None
) -> None:
    entry = estimate(FIXTURES / f"{name}.json", contexts=(4096,)).to_dict()
    assert entry["model_type"] == model_type
    assert entry["text_config"] == ("text_config" in load_fixture(name))
    if note:
        assert any(note in n for n in entry["notes"])


def test_hybrid_real_configs_split_growing_kv_from_fixed_state() -> None:
    entry = estimate(FIXTURES / "qwen3-next-80b-a3b.json").to_dict()
    # 12 full-attention layers x 2 KV heads x 256 x (K, V) x 2 bytes
    assert entry["kv_cache_bytes_per_token"] == 12 * 2 * 2 * 256 * 2
    # 36 gated-DeltaNet layers: conv (2·16·128 + 32·128) x 4 taps in bf16 + 32·128·128 fp32
    state = 36 * ((2 * 16 * 128 + 32 * 128) * 4 * 2 + 32 * 128 * 128 * 4)
    assert entry["state_bytes"] == state
    for item in entry["per_context"]:
        assert item["kv_cache_bytes"] == item["kv_bytes"] + state
        assert item["kv_bytes"] == item["context"] * entry["kv_cache_bytes_per_token"]
    gpt = estimate(FIXTURES / "gpt-oss-20b.json", contexts=(4096,)).to_dict()
    # 12 full layers hold 4096 tokens, 12 sliding layers 127 (window 128)
    per_layer_token = 2 * 8 * 64 * 2
    assert gpt["per_context"][0]["kv_cache_bytes"] == 12 * per_layer_token * (4096 + 127)
