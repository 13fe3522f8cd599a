"""Recommendation -> geometry for a from-scratch config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.recipe.geometry import load_recommendation, recommendation_to_geometry
from gqa_retrofit.recipe.recommend import recommend

EXAMPLE = Path(__file__).parents[2] / "examples" / "runs_synthetic.csv"


def test_geometry_of_the_best_recommendation_builds_a_real_model(tmp_path: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from gqa_retrofit.recipe.aspect import non_embedding_params

    result = recommend(EXAMPLE, context=131072, target_loss=2.6)
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(result.to_dict()))
    item = load_recommendation(path, rank=2)
    assert (item["heads"], item["kv_heads"]) == (
        result.recommendations[1].heads,
        result.recommendations[1].kv_heads,
    )
    geometry = recommendation_to_geometry(item)
    assert geometry == recommendation_to_geometry(result.recommendations[1])
    best = result.recommendations[1]
    assert geometry == {
        "num_hidden_layers": best.layers,
        "hidden_size": best.hidden,
        "intermediate_size": best.intermediate,
        "num_attention_heads": best.heads,
        "num_key_value_heads": best.kv_heads,
        "head_dim": 64,
    }
    config = AutoConfig.for_model("mistral", vocab_size=256, tie_word_embeddings=False, **geometry)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    assert (
        total - 2 * 256 * best.hidden
        == best.params_shape
        == non_embedding_params(best.layers, best.hidden, best.heads, best.kv_heads)
    )


def test_bad_recommendations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks 'layers'"):
        recommendation_to_geometry({"hidden": 512, "heads": 8, "kv_heads": 2})
    with pytest.raises(ConfigError, match="'kv_heads' is 0"):
        recommendation_to_geometry({"layers": 2, "hidden": 512, "heads": 8, "kv_heads": 0})
    with pytest.raises(ConfigError, match="heads 8 is not divisible by kv_heads 3"):
        recommendation_to_geometry({"layers": 2, "hidden": 512, "heads": 8, "kv_heads": 3})
    path = tmp_path / "r.json"
    path.write_text('{"recommendations": []}')
    with pytest.raises(ConfigError, match="holds no recommendations"):
        load_recommendation(path)
    path.write_text('{"recommendations": [{"heads": 8}]}')
    with pytest.raises(ConfigError, match=r"invalid rank 3: .* \(1\.\.1\)"):
        load_recommendation(path, rank=3)
    with pytest.raises(ConfigError, match="does not exist"):
        load_recommendation(tmp_path / "none.json")


def test_from_scratch_config_builds_the_recommended_model() -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from gqa_retrofit.recipe.geometry import from_scratch_config

    best = recommend(EXAMPLE, context=131072, target_loss=2.6).best  # 32:1, 25 x 1344
    template = AutoConfig.from_pretrained(Path(__file__).parent / "fixtures" / "smollm2-135m")
    config = from_scratch_config(template, best)
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (
        best.layers,
        best.hidden,
        best.intermediate,
    )
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (
        best.heads,
        best.kv_heads,
        64,
    )
    assert config.vocab_size == 49152 and config.tie_word_embeddings
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    assert total - 49152 * best.hidden == best.params_shape  # tied: one embedding matrix
    assert template.num_hidden_layers == 30  # the template is not mutated
