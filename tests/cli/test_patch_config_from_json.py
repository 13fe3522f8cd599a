"""``gqa-retrofit patch-config --from-json``: a recommendation becomes a trainable config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "runs_synthetic.csv"
SMOLLM2 = ROOT / "tests" / "recipe" / "fixtures" / "smollm2-135m"


@pytest.fixture
def recommendation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert (
        main(
            [
                "recommend",
                "--runs",
                str(EXAMPLE),
                "--context",
                "128k",
                "--target-loss",
                "2.6",
                "--json",
            ]
        )
        == 0
    )
    path = tmp_path / "rec.json"
    path.write_text(capsys.readouterr().out)
    return path


def test_from_json_writes_the_recommended_config(
    recommendation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    items = json.loads(recommendation.read_text())["recommendations"]
    for rank in (1, 3):
        out = tmp_path / f"rank{rank}"
        assert (
            main(
                [
                    "patch-config",
                    str(SMOLLM2),
                    str(out),
                    "--from-json",
                    str(recommendation),
                    "--rank",
                    str(rank),
                    "--json",
                ]
            )
            == 0
        )
        result = json.loads(capsys.readouterr().out)
        item = items[rank - 1]
        assert (result["heads"], result["kv_heads"], result["head_dim"]) == (
            item["heads"],
            item["kv_heads"],
            64,
        )
        config = AutoConfig.from_pretrained(out)  # plain transformers, no custom code
        assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (
            item["layers"],
            item["hidden"],
            item["intermediate"],
        )
        assert config.vocab_size == 49152 and config.rope_parameters["rope_theta"] == 100000
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for p in model.parameters())
        assert total - 49152 * item["hidden"] == item["params_shape"]


def test_from_json_refuses_explicit_heads_and_bad_ranks(
    recommendation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["patch-config", str(SMOLLM2), str(out), "--from-json", str(recommendation)]
    assert main([*args, "--heads", "8"]) == 2
    assert "--from-json sets heads, kv_heads and head_dim" in capsys.readouterr().err
    assert main([*args, "--rank", "40"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gqa-retrofit patch-config: error: invalid rank 40: ")
    assert err.count("\n") == 1
    assert not out.exists()
