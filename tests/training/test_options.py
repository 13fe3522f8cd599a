from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import build_parser
from gqa_retrofit.cli.train import options_from_args
from gqa_retrofit.errors import TrainingError
from gqa_retrofit.training.options import TrainOptions, load_config


def test_every_option_has_help_text() -> None:
    for f in TrainOptions.option_fields():
        assert f.metadata["help"], f.name


def test_from_dict_accepts_dashes_and_rejects_unknown_keys() -> None:
    opts = TrainOptions.from_dict({"train-steps": 7, "train_data": "a.txt", "distill_weight": 0.25})
    assert (opts.train_steps, opts.train_data, opts.distill_weight) == (7, ["a.txt"], 0.25)
    with pytest.raises(TrainingError, match="unknown training option 'max_step'; valid: "):
        TrainOptions.from_dict({"max_step": 3})


def test_old_names_are_accepted_with_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    opts = TrainOptions.from_dict({"max-steps": 7, "data": "a.txt", "eval_blocks": 3})
    assert (opts.train_steps, opts.train_data, opts.eval_windows) == (7, ["a.txt"], 3)
    assert "'max-steps' is a deprecated name; use 'train-steps'" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "m", "o", "--data", "x", "--max-steps", "2"])
    assert (options_from_args(args).train_data, options_from_args(args).train_steps) == (["x"], 2)
    assert "--max-steps is a deprecated name; use --train-steps" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_steps": 0}, "--train-steps 0 is invalid: must be a positive integer"),
        ({"seq_len": -4}, "--seq-len -4 is invalid"),
        ({"distill_weight": 1.5}, r"--distill-weight 1.5 is invalid: must be in \[0.0, 1.0\]"),
        ({"schedule": "linear"}, "--schedule 'linear' is invalid: choose one of wsd, cosine"),
        ({"lr": 0.0}, "--lr 0.0 is invalid"),
        ({"train_data": []}, "no training data given"),
        ({"seed": -1}, "--seed -1 is invalid: must be >= 0"),
        (
            {"report_to": ["wandb"]},
            "--report-to 'wandb' is invalid: choose one of tensorboard, trackio",
        ),
    ],
)
def test_validate_names_the_bad_value(change: dict, message: str) -> None:
    opts = TrainOptions.from_dict({"model": "m", "out": "o", "train_data": ["x.txt"], **change})
    with pytest.raises(TrainingError, match=message):
        opts.validate()


def test_yaml_config_merges_under_cli_flags(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("max-steps: 50\nlr: 0.001\ndata: [a.txt, b.txt]\nteacher: orig\n")
    assert load_config(config)["max-steps"] == 50
    args = build_parser().parse_args(
        ["train", "m", "out", "--config", str(config), "--lr", "0.02", "--trainable", "lora"]
    )
    opts = options_from_args(args)
    assert opts.train_steps == 50  # from the file
    assert opts.lr == 0.02  # the flag wins over the file
    assert opts.train_data == ["a.txt", "b.txt"]
    assert (opts.teacher, opts.trainable, opts.model, opts.out) == ("orig", "lora", "m", "out")
    assert opts.seq_len == 512  # untouched default


def test_json_config_and_bad_config(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text('{"seq_len": 64, "resume": "latest"}')
    assert load_config(good) == {"seq_len": 64, "resume": "latest"}
    bad = tmp_path / "c.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(TrainingError, match="must hold a mapping"):
        load_config(bad)
    with pytest.raises(TrainingError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_resume_flag_without_value_means_latest() -> None:
    args = build_parser().parse_args(["train", "m", "o", "--train-data", "x", "--resume"])
    assert isinstance(args, argparse.Namespace)
    assert options_from_args(args).resume == "latest"
    args = build_parser().parse_args(
        ["train", "m", "o", "--train-data", "x", "y", "--train-data", "z"]
    )
    assert options_from_args(args).train_data == ["x", "y", "z"]


def test_shipped_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    values = load_config(root / "examples" / "train_config.yaml")
    opts = TrainOptions.from_dict({**values, "model": "m", "out": "o"}).validate()
    assert (opts.train_steps, opts.seq_len, opts.teacher) == (100, 256, "original-model/")
