"""``eval --probes``: retrieval probes from the command line, JSON, plot, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. "


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path / "tiny", "llama", max_position_embeddings=512)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT * 12, encoding="utf-8")  # 1,092 tokens
    return path


def test_json_and_plot(
    model_dir: Path, text_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "probes.png"
    argv = ["-q", "eval", str(model_dir), "--eval-data", str(text_file), "--eval-seq-len", "64"]
    argv += ["--probes", "all", "--passkey-depths", "0", "1", "--passkey-trials", "1"]
    argv += ["--copy-span", "16", "--long-seq-len", "128", "--plot", str(png), "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == str(model_dir) and data["seq_len"] == 64  # perplexity as before
    retrieval = data["retrieval"]
    assert list(retrieval["summary"]["passkey_success"]) == ["512"]  # the model's limit
    assert retrieval["passkey"]["trials_per_depth"] == 1 and retrieval["passkey"]["depths"] == [
        0,
        1,
    ]
    assert retrieval["copy"]["span_length"] == 16 and retrieval["copy"]["trials"] == 4
    assert retrieval["long_window"]["seq_len"] == 128 and retrieval["long_window"]["windows"] == 2
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_text_output_without_data(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-q", "eval", str(model_dir), "--probes", "passkey,copy", "--copy-span", "16"]
    argv += ["--passkey-lengths", "400", "600", "--passkey-depths", "0.5", "--passkey-trials", "1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "passkey retrieval (filler haystack, 1 depth(s) x 1 prompt(s) per length):"
    assert lines[1].startswith("      400 tokens") and lines[1].endswith("(0/1)")
    assert lines[2].endswith("(beyond the position limit)")  # 600 > 512: computed and flagged
    assert lines[3].startswith("copy probe (4 x 16 random tokens): second copy ")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--probes", "copy", "--passkey-trials", "0"], "passkey trials must be at least 1, got 0"),
        (["--probes", "passkey", "--passkey-depths", "1.5"], "passkey depth 1.5 is outside [0, 1]"),
        (["--probes", "copy", "--copy-trials", "0"], "copy-probe trials must be at least 1, got 0"),
        (["--probes", "long-ppl"], "the long-ppl probe needs a text file"),
        ([], "eval needs --eval-data (perplexity) or --probes (in-context retrieval)"),
    ],
)
def test_bad_input_exits_2(
    model_dir: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "eval", str(model_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_probe_is_a_usage_error(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "eval", str(model_dir), "--probes", "copy,needle"])
    assert exit_info.value.code == 2
    assert (
        "argument --probes: unknown retrieval probe 'needle'; valid: passkey, copy, long-ppl, all"
        in capsys.readouterr().err
    )


def test_short_haystack_names_file_and_length(
    model_dir: Path, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-q", "eval", str(model_dir), "--probes", "passkey", "--haystack", str(text_file)]
    assert main([*argv, "--passkey-lengths", "400", "2000"]) == 2
    assert (
        f"error: haystack file '{text_file}' has 1092 tokens, fewer than the longest passkey "
        "length 2000; use a longer text or shorter lengths" in capsys.readouterr().err
    )


def test_probe_flags_are_options_of_the_regime(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--probes`` and its settings are declared once (ProbeOptions, nested in EvalOptions):
    a ``--config`` file sets them like the flags do, and flags win over the file."""
    from gqa_retrofit.cli.main import build_parser
    from gqa_retrofit.evaluation.options import EvalOptions

    config = tmp_path / "eval.yaml"
    config.write_text("probes: copy\ncopy-span: 16\ncopy_trials: 1\nprobe_seed: 3\n")
    args = build_parser().parse_args(["eval", str(model_dir), "--config", str(config)])
    from_file = EvalOptions.from_args(args).retrieval.retrieval_options()
    argv = ["eval", str(model_dir), "--probes", "copy", "--copy-span", "16", "--copy-trials", "1"]
    args = build_parser().parse_args([*argv, "--probe-seed", "3"])
    assert EvalOptions.from_args(args).retrieval.retrieval_options() == from_file
    assert from_file is not None and (from_file.copy_span, from_file.seed) == (16, 3)
    args = build_parser().parse_args(
        ["eval", str(model_dir), "--config", str(config), "--copy-span", "8"]
    )
    assert EvalOptions.from_args(args).retrieval.copy_span == 8
    assert main(["-q", "eval", str(model_dir), "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retrieval"]["copy"]["span_length"] == 16
