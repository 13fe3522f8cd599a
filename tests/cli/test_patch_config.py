"""``gqa-retrofit patch-config``: writes configs (+ code for custom types); bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.cli.main import main
from tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("src")
    return {f: save_tiny_model(root / f, f) for f in ("llama", "gpt_neox")}


def test_custom_type_dir_builds_a_model_from_its_own_code(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    out = tmp_path / "neox-gqa"
    argv = [
        "patch-config",
        str(sources["gpt_neox"]),
        str(out),
        "--heads",
        "8",
        "--kv-heads",
        "2",
        "--head-dim",
        "32",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "out": str(out),
        "model_type": "gpt_neox_gqa",
        "heads": 8,
        "kv_heads": 2,
        "head_dim": 32,
        "files": [
            "_gqa_common.py",
            "_gqa_geometry.py",
            "config.json",
            "configuration_gpt_neox_gqa.py",
            "modeling_gpt_neox_gqa.py",
        ],
    }
    written = json.loads((out / "config.json").read_text())
    assert written["auto_map"] == {
        "AutoConfig": "configuration_gpt_neox_gqa.GPTNeoXGQAConfig",
        "AutoModelForCausalLM": "modeling_gpt_neox_gqa.GPTNeoXGQAForCausalLM",
    }
    assert "gqa_retrofit" not in (out / "modeling_gpt_neox_gqa.py").read_text()
    config = AutoConfig.from_pretrained(out)
    model = AutoModelForCausalLM.from_config(config)
    qkv = model.gpt_neox.layers[0].attention.query_key_value
    assert qkv.weight.shape == ((8 + 2 * 2) * 32, 64)
    assert model(torch.tensor([[3, 4, 5]])).logits.shape == (1, 3, 128)


def test_native_type_writes_only_config(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "llama-6h"
    assert (
        main(
            [
                "patch-config",
                str(sources["llama"]),
                str(out),
                "--heads",
                "6",
                "--kv-heads",
                "3",
                "--head-dim",
                "8",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(
        f"wrote {out}: mistral with 6 heads, 3 KV heads, head_dim 8 (config.json)"
    )
    assert sorted(p.name for p in out.iterdir()) == [".gqa-retrofit-output.json", "config.json"]
    assert "auto_map" not in json.loads((out / "config.json").read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heads", "6", "--kv-heads", "4"], "heads=6 is not divisible by kv_heads=4"),
        (["--head-dim", "7"], "head_dim=7 must be even with rotary embeddings"),
    ],
)
def test_bad_geometry_exits_2_and_writes_nothing(
    sources: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    assert main(["patch-config", str(sources["llama"]), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_non_positive_values_are_usage_errors(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["patch-config", str(sources["llama"]), str(tmp_path / "o"), "--kv-heads", "0"])
    assert info.value.code == 2
    assert "argument --kv-heads: invalid value '0': must be a positive integer" in (
        capsys.readouterr().err
    )


def test_unsupported_family_and_existing_output(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bert = tmp_path / "bert.json"
    bert.write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    assert main(["patch-config", str(bert), str(tmp_path / "o")]) == 2
    assert "'bert' cannot be patched; supported: " in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert main(["patch-config", str(sources["llama"]), str(tmp_path / "exists")]) == 2
    assert "already exists" in capsys.readouterr().err
