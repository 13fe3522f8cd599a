"""The recipe plot: one curve per configuration on three panels, best one starred."""

from __future__ import annotations

from pathlib import Path

import pytest

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.recipe.plot import plot_recipe
from gqa_retrofit.recipe.recommend import recommend

EXAMPLE = Path(__file__).parents[2] / "examples" / "runs_synthetic.csv"


def test_svg_holds_the_panels_and_the_best_curves(tmp_path: Path) -> None:
    result = recommend(EXAMPLE, context=32768, target_loss=2.6)
    out = plot_recipe(result, tmp_path / "recipe.svg", max_curves=4, points=10)
    svg = out.read_text()
    # matplotlib writes each text label as an SVG comment
    best = result.recommendations[0]
    assert f"<!-- {best.heads}:{best.kv_heads} (best) -->" in svg
    for rec in result.recommendations[1:4]:
        assert f"<!-- {rec.heads}:{rec.kv_heads} -->" in svg
    fifth = result.recommendations[4]
    assert f"<!-- {fifth.heads}:{fifth.kv_heads} -->" not in svg
    assert "decode FLOPs per token C" in svg and "inference memory M" in svg
    assert "context 32,768 tokens" in svg


def test_bad_suffix_is_refused(tmp_path: Path) -> None:
    result = recommend(EXAMPLE, context=32768, target_loss=2.6)
    with pytest.raises(ConfigError, match=r"must end in \.png, \.svg, \.pdf"):
        plot_recipe(result, tmp_path / "plot.jpg")
    assert list(tmp_path.iterdir()) == []
