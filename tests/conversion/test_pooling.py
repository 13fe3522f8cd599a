"""The pooling registry: one entry per method, the data-aware ones from one table."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.arch.canonical import AttentionWeights
from gqa_retrofit.conversion.methods import DATA_AWARE_METHODS, DEFAULT_METHOD, convert_attention
from gqa_retrofit.conversion.pooling import (
    _REGISTRY,
    HeadTarget,
    PoolResult,
    get_pooling,
    pooling_methods,
    register_pooling,
)
from gqa_retrofit.errors import ConfigError


def _weights(heads: int = 4, kv_heads: int = 2, head_dim: int = 8, hidden: int = 16):
    g = torch.Generator().manual_seed(0)
    return AttentionWeights(
        q=torch.randn(heads, head_dim, hidden, generator=g),
        k=torch.randn(kv_heads, head_dim, hidden, generator=g),
        v=torch.randn(kv_heads, head_dim, hidden, generator=g),
        o=torch.randn(hidden, heads, head_dim, generator=g),
    )


def test_registry_holds_mean_and_every_table_row_with_its_facts() -> None:
    methods = pooling_methods()
    assert {"mean", "align-mean", "pca", "mean-refit", "pca-refit"} <= set(methods)
    mean = methods["mean"]
    assert (mean.pools, mean.refit, mean.needs_calibration) == ("mean", False, False)
    expected = {
        "align-mean": ("align", False),
        "pca": ("pca", False),
        "mean-refit": ("mean", True),
        "pca-refit": ("pca", True),
    }
    assert {row.name: (row.kv, row.refit) for row in DATA_AWARE_METHODS} == expected
    for row in DATA_AWARE_METHODS:
        entry = methods[row.name]
        assert entry.fn is row
        assert (entry.pools, entry.refit, entry.needs_calibration) == (row.kv, row.refit, True)
        assert (entry.summary, entry.reference) == (row.summary, row.reference)
        assert entry.summary and entry.reference
    assert DEFAULT_METHOD in methods


def test_a_table_row_is_convert_attention_with_its_choices() -> None:
    weights = _weights()
    row = next(r for r in DATA_AWARE_METHODS if r.name == "mean-refit")
    calibration = None  # same geometry: nothing to learn from data, the identity
    same = row(weights, HeadTarget(2), calibration).weights
    direct = convert_attention(weights, HeadTarget(2), calibration, kv="mean", refit=True)
    assert torch.equal(same.k, direct.weights.k) and torch.equal(same.o, weights.o)
    with pytest.raises(ConfigError, match="needs calibration text"):
        row(weights, HeadTarget(1), None)


def test_a_new_method_is_one_registered_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gqa_retrofit.conversion.pooling._REGISTRY", dict(_REGISTRY))

    @register_pooling("first-head", pools="first head of each group", summary="s", reference="r")
    def first_head(weights, target, calibration=None):
        size = weights.kv_heads // target.kv_heads
        keep = list(range(0, weights.kv_heads, size))
        return PoolResult(weights.replace(k=weights.k[keep], v=weights.v[keep]), {"kept": keep})

    entry = get_pooling("first-head")
    assert (entry.fn, entry.pools, entry.refit, entry.needs_calibration) == (
        first_head,
        "first head of each group",
        False,
        False,
    )
    result = entry.fn(_weights(), HeadTarget(1))
    assert result.weights.kv_heads == 1 and result.record == {"kept": [0]}
    with pytest.raises(ValueError, match="pooling method 'first-head' is already registered"):
        register_pooling("first-head", pools="x")(first_head)


def test_unknown_method_names_the_available_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_pooling("median")
    assert str(err.value) == (
        "unknown pooling method 'median'; available: " + ", ".join(sorted(pooling_methods()))
    )
