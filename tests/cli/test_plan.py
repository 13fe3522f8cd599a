"""``gqa-retrofit plan``: table, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main
from gqa_retrofit.cli.plan import byte_size, flops_value

SMOLLM2 = Path(__file__).parents[1] / "recipe" / "fixtures" / "smollm2-135m"


def test_table_prints_the_convert_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "plan",
                str(SMOLLM2),
                "--context",
                "128k",
                "--memory-budget",
                "2GiB",
                "--out",
                "smol-mqa",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"gqa-retrofit convert {SMOLLM2} smol-mqa --kv-heads 1"
    assert "chosen: heads 9, kv_heads 1" in out
    assert "9:3 (now)" in out
    assert "beyond the model's max_position_embeddings" in out
    assert "paper's Appendix I fit" in out and "not a prediction for this model" in out


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "plan",
                str(SMOLLM2),
                "--context",
                "32k",
                "--max-flops",
                "4G",
                "--min-heads",
                "3",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["max_flops"] == 4e9 and data["min_heads"] == 3
    assert data["chosen"]["heads"] == 3 and data["chosen"]["kv_heads"] == 1
    assert data["command"].endswith("--kv-heads 1 --heads 3")
    assert {(o["heads"], o["kv_heads"]) for o in data["options"]} == {
        (9, 3),
        (9, 1),
        (6, 3),
        (6, 1),
        (3, 3),
        (3, 1),
        (1, 1),
    }
    for option in data["options"]:
        assert option["within_budget"] == (option["flops"] <= 4e9)


def test_units() -> None:
    assert byte_size("16GiB") == 16 * 2**30
    assert byte_size("1.5 GB") == 1_500_000_000
    assert byte_size("1024") == 1024
    assert flops_value("2G") == 2e9
    assert flops_value("3e9") == 3e9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "4k", "--min-heads", "0"], "invalid min_heads 0: must lie in 1..9"),
        (["--context", "4k", "--dtype", "fp7"], "fp7"),
        (["--context", "4k", "--lambda", "-1"], "invalid lambda -1.0"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(SMOLLM2), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gqa-retrofit plan: error: ") and message in err
    assert err.count("\n") == 1


def test_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path / "nothing"), "--context", "4k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gqa-retrofit plan: error: ") and err.count("\n") == 1


def test_bad_budget_unit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(SMOLLM2), "--context", "4k", "--memory-budget", "16 parsecs"])
    assert exc.value.code == 2
    assert "invalid size '16 parsecs'" in capsys.readouterr().err


def test_tp_below_kv_heads_warns_and_dcp_silences(capsys: pytest.CaptureFixture[str]) -> None:
    """SmolLM2 (9 q / 3 kv heads) planned for TP=3: the 1-KV-head choice is replicated 3x
    per device unless --dcp 3 splits the tokens; options vLLM cannot split are not chosen."""
    args = ["plan", str(SMOLLM2), "--context", "3k", "--tp", "3", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err.startswith(
        "warning: 9:1: 1 KV head(s) at --tp 3: vLLM replicates each KV head 3 times"
    )
    by_label = {f"{o['heads']}:{o['kv_heads']}": o["serving"] for o in data["options"]}
    assert by_label["1:1"] == {"error": "--tp 3 does not divide the 1 attention heads; valid: 1"}
    # 30 layers x 3072 tokens x one 64-wide K and V head per device x 2 bytes
    assert by_label["9:1"]["per_device_kv_cache_bytes"] == 30 * 3072 * 2 * 64 * 2
    assert by_label["9:3"]["per_device_kv_cache_bytes"] == 30 * 3072 * 2 * 64 * 2
    assert data["serving"] == {"tp": 3, "dcp": 1, "kv_dtype": "bf16", "batch": 1}
    assert main([*args, "--dcp", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    data = json.loads(captured.out)
    by_label = {f"{o['heads']}:{o['kv_heads']}": o["serving"] for o in data["options"]}
    assert by_label["9:1"]["per_device_kv_cache_bytes"] == 30 * 1024 * 2 * 64 * 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tp", "0"], "invalid --tp '0': must be a positive integer"),
        (["--tp", "4", "--dcp", "3"], "--dcp 3 must divide --tp 4"),
        (["--kv-dtype", "int3"], "unknown KV dtype 'int3'"),
        (["--batch", "x"], "invalid --batch 'x'"),
    ],
)
def test_bad_serving_options_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(SMOLLM2), "--context", "4k", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize(
    "extra",
    [[], ["--min-heads", "2", "--lambda", "1"], ["--config-json"]],
    ids=["kv-only", "fewer-query-heads", "config-json-path"],
)
def test_printed_convert_commands_parse_and_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
) -> None:
    import shlex

    from gqa_retrofit.cli.main import build_parser
    from tiny_models import save_tiny_model

    src = save_tiny_model(tmp_path / "src", "llama")
    model = str(src / "config.json") if extra == ["--config-json"] else str(src)
    flags = [] if extra == ["--config-json"] else extra
    assert main(["plan", model, "--context", "256", "--json", *flags]) == 0
    command = json.loads(capsys.readouterr().out)["command"]
    argv = shlex.split(command)
    assert argv[:2] == ["gqa-retrofit", "convert"]
    args = build_parser().parse_args(argv[1:])  # the real parser accepts it as printed
    assert (args.command, args.src) == ("convert", str(src))
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0, capsys.readouterr().err
    out = tmp_path / argv[3]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["num_key_value_heads"] == int(argv[argv.index("--kv-heads") + 1])
    if "--heads" in argv:
        assert config["num_attention_heads"] == int(argv[argv.index("--heads") + 1])
        assert "needs a data-aware method" in capsys.readouterr().err  # announced, not silent
