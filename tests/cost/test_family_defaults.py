"""The family table's defaults are transformers' own: where config.json omits a key, the
estimator uses the value the config class would (so a transformers release that changes a
default fails here instead of drifting silently)."""

from __future__ import annotations

import pytest

from gqa_retrofit.arch import FAMILIES
from gqa_retrofit.cost import kv_cache_bytes, param_counts, read_config
from tests.cost.shrunk_families import SHRUNK, WRAPPERS, shrunk_config

NATIVE = sorted(t for t, spec in FAMILIES.items() if spec.decoupled_type != t)
# text decoders whose config class leaves tie_word_embeddings to the multimodal wrapper
WRAPPER_OF = {"qwen3_vl_text": "qwen3_vl", "qwen3_vl_moe_text": "qwen3_vl_moe"}
OMITTABLE = ("tie_word_embeddings", "head_dim", "sliding_window", "layer_types")


def _class_default(model_type: str, key: str):
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    values = config.to_dict()
    if key == "global_head_dim" and "per_layer_config" in values:
        # gemma4 turns global_head_dim into per-layer head_dim overrides of the full layers
        return next(iter(values["per_layer_config"].values()))["head_dim"]
    if key in values:  # also per-layer attributes (gemma4's head_dim) that refuse getattr
        return values[key]
    try:
        return getattr(config, key)
    except AttributeError:
        return getattr(AutoConfig.for_model(WRAPPER_OF[model_type]), key)


@pytest.mark.parametrize("model_type", NATIVE)
def test_tie_default_is_the_config_class_default(model_type: str) -> None:
    spec = FAMILIES[model_type]
    assert spec.tie_default == _class_default(model_type, "tie_word_embeddings")


@pytest.mark.parametrize("model_type", sorted(t for t in NATIVE if FAMILIES[t].config_defaults))
def test_config_defaults_are_the_config_class_defaults(model_type: str) -> None:
    for key, value in FAMILIES[model_type].config_defaults.items():
        assert _class_default(model_type, key) == value, key


@pytest.mark.parametrize("name", sorted(n for n in SHRUNK if n not in WRAPPERS))
def test_omitted_keys_read_as_transformers_fills_them(name: str) -> None:
    """A config.json without tie_word_embeddings/head_dim/sliding_window/layer_types costs
    the same as the config transformers builds from it (class defaults filled in)."""
    from transformers import AutoConfig

    raw = {k: v for k, v in shrunk_config(name).items() if k not in OMITTABLE}
    filled = AutoConfig.for_model(**raw).to_dict()
    mine, theirs = read_config(raw), read_config(filled)
    assert param_counts(mine) == param_counts(theirs)
    assert kv_cache_bytes(mine, 13) == kv_cache_bytes(theirs, 13)
