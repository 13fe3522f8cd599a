"""Config-side facts of the family table, checked against transformers itself."""

from __future__ import annotations

import pytest

import gqa_retrofit.patching
from gqa_retrofit.arch import FAMILIES
from gqa_retrofit.cost import read_config

SLIDING_FAMILIES = sorted(name for name, spec in FAMILIES.items() if spec.sliding != "none")

_RAW = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=7,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    sliding_window=8,
    use_sliding_window=True,
    max_window_layers=3,
)


def test_every_family_is_a_transformers_model_type() -> None:
    from transformers import AutoConfig

    for model_type, spec in FAMILIES.items():
        if spec.decoupled_type == model_type:
            continue  # gqa_retrofit's own custom types, registered by gqa_retrofit.patching
        assert AutoConfig.for_model(model_type).model_type == model_type


@pytest.mark.parametrize("model_type", SLIDING_FAMILIES)
def test_sliding_rule_matches_transformers_cache_layout(model_type: str) -> None:
    """The per-layer windows read from a raw config (no ``layer_types``) are the ones
    transformers' DynamicCache builds from the same config."""
    from transformers import AutoConfig
    from transformers.cache_utils import get_layer_types_and_kwargs

    raw = {**_RAW, "model_type": model_type}
    hf_config = AutoConfig.for_model(**raw)
    layer_types, kwargs = get_layer_types_and_kwargs(hf_config)
    expected = tuple(
        k.get("sliding_window") if t in ("sliding_attention", "chunked_attention") else None
        for t, k in zip(layer_types, kwargs)
    )
    windows = read_config(raw).windows
    assert windows == expected
    assert any(w is not None for w in windows)


@pytest.mark.parametrize("model_type", ["qwen2", "qwen3", "qwen3_moe"])
def test_sliding_gate_off_means_full_attention(model_type: str) -> None:
    from transformers import AutoConfig
    from transformers.cache_utils import get_layer_types_and_kwargs

    raw = {**_RAW, "model_type": model_type, "use_sliding_window": False}
    layer_types, _ = get_layer_types_and_kwargs(AutoConfig.for_model(**raw))
    assert set(layer_types) == {"full_attention"}
    assert read_config(raw).windows == (None,) * 7


def test_moe_keys_exist_in_transformers_configs() -> None:
    from transformers import AutoConfig

    for model_type, spec in FAMILIES.items():
        if spec.moe is None:
            continue
        config = AutoConfig.for_model(model_type).to_dict()
        keys = [spec.moe.top_k_key, spec.moe.expert_ffn_key]
        keys += [
            k
            for k in (
                spec.moe.shared_experts_key,
                spec.moe.first_dense_key,
                spec.moe.sparse_step_key,
                spec.moe.dense_layers_key,
            )
            if k
        ]
        assert any(k in config for k in spec.moe.experts_keys), model_type
        assert all(k in config for k in keys), model_type


def test_custom_types_table_matches_the_family_table_and_the_model_files() -> None:
    from pathlib import Path

    from gqa_retrofit.arch import CUSTOM_TYPES
    from gqa_retrofit.patching.custom_types import custom_classes

    models = Path(gqa_retrofit.patching.__file__).parent / "models"
    on_disk = {p.stem.removeprefix("configuration_") for p in models.glob("configuration_*.py")}
    assert set(CUSTOM_TYPES) == on_disk
    for name, custom in CUSTOM_TYPES.items():
        assert name == f"{custom.base_type}_gqa"
        assert FAMILIES[name].decoupled == "custom" and FAMILIES[name].decoupled_type == name
        assert FAMILIES[custom.base_type].decoupled_type == name
        if custom.own_attention:
            assert FAMILIES[name].honours_kv_heads and FAMILIES[name].honours_head_dim
        config_class, model_class = custom_classes(name)
        assert (config_class.__name__, model_class.__name__) == (
            custom.config_class,
            custom.model_class,
        )
        assert config_class.model_type == name
