"""Split/merge between every family's attention tensors and the canonical form."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.arch.geometry import Geometry
from gqa_retrofit.arch.layout import (
    attention_geometry,
    attention_prefix,
    attention_tensor_names,
    merge_attention,
    split_attention,
)
from gqa_retrofit.errors import ConfigError
from tiny_models import TINY_FAMILIES, tiny_config, tiny_model

# Falcon's three historical KV layouts: grouped (40B), multi-query (7B), per-head MHA (RW).
VARIANTS = [(f, {}) for f in TINY_FAMILIES] + [
    ("falcon", {"new_decoder_architecture": False, "multi_query": True}),
    ("falcon", {"new_decoder_architecture": False, "multi_query": False}),
    ("falcon", {"bias": True}),
    ("llama", {"attention_bias": True}),
    ("gpt_neox", {"attention_bias": False}),
]


def _layer_tensors(model, spec, layer: int) -> dict[str, torch.Tensor]:
    prefix = attention_prefix(spec, layer)
    return {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize(("family", "overrides"), VARIANTS)
def test_split_merge_round_trip_is_bit_exact(family: str, overrides: dict) -> None:
    model = tiny_model(family, **overrides)
    spec = get_family(family)
    names = attention_tensor_names(spec, model.config)
    for layer in range(model.config.num_hidden_layers):
        tensors = _layer_tensors(model, spec, layer)
        assert set(names) <= set(tensors), (names, sorted(tensors))
        weights = split_attention(spec, model.config, tensors)
        geo = attention_geometry(spec, model.config)
        assert (weights.heads, weights.kv_heads, weights.head_dim, weights.hidden) == (
            geo.heads,
            geo.kv_heads,
            geo.head_dim,
            geo.hidden,
        )
        merged = merge_attention(spec, model.config, weights)
        assert sorted(merged) == sorted(names)
        for name in names:
            assert merged[name].dtype == tensors[name].dtype
            assert torch.equal(merged[name], tensors[name]), name


def test_geometry_of_each_falcon_layout() -> None:
    spec = get_family("falcon")
    grouped = tiny_config("falcon")
    mqa = tiny_config("falcon", new_decoder_architecture=False, multi_query=True)
    mha = tiny_config("falcon", new_decoder_architecture=False, multi_query=False)
    assert attention_geometry(spec, grouped) == Geometry(2, 64, 4, 2, 16)
    assert attention_geometry(spec, mqa) == Geometry(2, 64, 4, 1, 16)
    assert attention_geometry(spec, mha) == Geometry(2, 64, 4, 4, 16)


def test_families_ignoring_kv_heads_are_mha() -> None:
    # tiny configs pass num_key_value_heads=2, which gpt2/gpt_neox/opt silently ignore
    for family in ("gpt2", "gpt_neox", "opt"):
        geo = attention_geometry(get_family(family), tiny_config(family))
        assert geo == Geometry(2, 64, 4, 4, 16), family


def test_interleaved_rows_are_per_head_q_k_v() -> None:
    spec = get_family("gpt_neox")
    config = tiny_config("gpt_neox")
    rows = torch.arange(3 * 64, dtype=torch.float32)[:, None].expand(-1, 64).contiguous()
    weights = split_attention(
        spec, config, {"query_key_value.weight": rows, "dense.weight": torch.zeros(64, 64)}
    )
    # head 1's rows are 48..63 (q), 64..79 (k), 80..95 (v)
    assert weights.q[1, :, 0].tolist() == list(range(48, 64))
    assert weights.k[1, :, 0].tolist() == list(range(64, 80))
    assert weights.v[1, :, 0].tolist() == list(range(80, 96))


def test_grouped_rows_put_group_queries_before_their_kv() -> None:
    spec = get_family("falcon")
    config = tiny_config(
        "falcon"
    )  # 4 q heads, 2 kv heads, d_h 16: groups (q0 q1 k0 v0)(q2 q3 k1 v1)
    rows = torch.arange(128, dtype=torch.float32)[:, None].expand(-1, 64).contiguous()
    weights = split_attention(
        spec, config, {"query_key_value.weight": rows, "dense.weight": torch.zeros(64, 64)}
    )
    assert weights.q[2, 0, 0].item() == 64.0
    assert weights.k[0, 0, 0].item() == 32.0
    assert weights.v[1, 0, 0].item() == 112.0


def test_conv1d_is_transposed() -> None:
    model = tiny_model("gpt2")
    spec = get_family("gpt2")
    attn = model.transformer.h[0].attn
    weights = split_attention(spec, model.config, _layer_tensors(model, spec, 0))
    assert torch.equal(weights.q.reshape(64, 64), attn.c_attn.weight[:, :64].t())
    assert torch.equal(weights.o.reshape(64, 64), attn.c_proj.weight.t())


def test_prefix_and_names() -> None:
    assert attention_prefix(get_family("llama"), 3) == "model.layers.3.self_attn."
    assert attention_prefix(get_family("gpt2"), 0) == "transformer.h.0.attn."
    assert attention_tensor_names(get_family("qwen2"), tiny_config("qwen2")) == [
        "q_proj.weight",
        "q_proj.bias",
        "k_proj.weight",
        "k_proj.bias",
        "v_proj.weight",
        "v_proj.bias",
        "o_proj.weight",
    ]
    assert attention_tensor_names(get_family("phi3"), tiny_config("phi3")) == [
        "qkv_proj.weight",
        "o_proj.weight",
    ]


def test_merge_to_other_geometry_after_pooling() -> None:
    from gqa_retrofit.conversion.pooling import HeadTarget, get_pooling

    spec = get_family("falcon_gqa")
    model = tiny_model("falcon")
    weights = split_attention(spec, _as_custom(model.config), _layer_tensors(model, spec, 0))
    pooled = get_pooling("mean").fn(weights, HeadTarget(kv_heads=1)).weights
    target = _as_custom(model.config, num_kv_heads=1)
    merged = merge_attention(spec, target, pooled)
    assert merged["query_key_value.weight"].shape == (6 * 16, 64)
    assert torch.equal(split_attention(spec, target, merged).k, pooled.k)


def _as_custom(config, **changes):
    from types import SimpleNamespace

    fields = {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_kv_heads": 2,
    }
    fields["head_dim"] = 16
    fields.update(changes)
    return SimpleNamespace(**fields, bias=config.bias)


def test_wrong_shapes_and_missing_tensors_are_config_errors() -> None:
    spec = get_family("llama")
    model = tiny_model("llama")
    tensors = _layer_tensors(model, spec, 0)
    with pytest.raises(ConfigError, match=r"'k_proj\.weight' missing"):
        split_attention(
            spec, model.config, {k: v for k, v in tensors.items() if k != "k_proj.weight"}
        )
    with pytest.raises(
        ConfigError, match=r"'q_proj.weight' has shape \(32, 64\), expected \(64, 64\)"
    ):
        split_attention(spec, model.config, {**tensors, "q_proj.weight": torch.zeros(32, 64)})
    weights = split_attention(spec, model.config, tensors)
    with pytest.raises(ConfigError, match="do not fit"):
        merge_attention(spec, tiny_config("llama", num_key_value_heads=4), weights)
