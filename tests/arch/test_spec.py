"""FamilySpec's one rule for falcon-style KV layouts, read the same way from dicts and configs."""

from __future__ import annotations

import pytest
from transformers import FalconConfig
from transformers.models.falcon.modeling_falcon import FalconAttention

from gqa_retrofit.arch import FAMILIES
from gqa_retrofit.arch.layout import attention_geometry
from gqa_retrofit.cost import read_config

FALCON = FAMILIES["falcon"]
TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        ({"new_decoder_architecture": True, "num_kv_heads": 2}, None),  # the KV field counts
        ({"multi_query": True}, 1),
        ({"multi_query": False}, 4),
        ({}, 1),  # both keys absent: FalconConfig's defaults (multi-query)
    ],
)
def test_switched_kv_heads_from_a_dict_and_a_config_agree_with_transformers(
    switches: dict, expected: int | None
) -> None:
    raw = {"model_type": "falcon", **TINY, **switches}
    config = FalconConfig(**TINY, **switches)
    from_dict = FALCON.switched_kv_heads(raw.get, 4)
    from_object = FALCON.switched_kv_heads(lambda key, default: getattr(config, key, default), 4)
    assert from_dict == from_object == expected
    weights_kv = FalconAttention(config).num_kv_heads  # KV heads of the projection weights
    assert attention_geometry(FALCON, config).kv_heads == weights_kv
    assert read_config(raw).kv_heads == weights_kv


def test_families_without_switches_leave_kv_heads_to_the_config() -> None:
    assert FAMILIES["llama"].switched_kv_heads({"num_key_value_heads": 2}.get, 8) is None
    assert FAMILIES["falcon_gqa"].switched_kv_heads({"multi_query": True}.get, 8) is None
