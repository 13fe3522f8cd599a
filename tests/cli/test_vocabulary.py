"""One vocabulary across commands: shared flags, global flags anywhere, dtype spellings."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from gqa_retrofit.cli.main import build_parser, main
from gqa_retrofit.errors import GQARetrofitError

ROOT = Path(__file__).parents[2]


def _commands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def test_every_command_has_json_quiet_and_debug() -> None:
    for name, parser in _commands().items():
        assert {"--json", "-q", "--quiet", "--debug"} <= _flags(parser), name


@pytest.mark.parametrize(
    ("flag", "commands"),
    [
        ("--train-data", {"train", "retrofit"}),
        ("--train-steps", {"train", "retrofit", "demo"}),
        ("--eval-data", {"eval", "train", "retrofit"}),
        ("--eval-windows", {"eval", "train", "retrofit", "demo"}),
        ("--device", {"convert", "eval", "train", "bench", "retrofit"}),
        ("--text-column", {"convert", "eval", "train", "retrofit"}),
        ("--config", {"convert", "eval", "train", "retrofit"}),
        ("--base-model", {"convert", "retrofit", "card"}),
        ("--teacher-revision", {"train"}),
    ],
)
def test_one_name_per_option(flag: str, commands: set[str]) -> None:
    having = {name for name, parser in _commands().items() if flag in _flags(parser)}
    assert having == commands
    for old in ("--data", "--max-steps", "--max-tokens", "--eval-blocks", "--max-windows"):
        assert all(old not in _flags(p) for p in _commands().values())  # hidden, not advertised


def test_revision_is_the_hub_revision_of_the_model_read() -> None:
    """``--revision`` names a Hub revision of what the command reads (``push``: the branch it
    writes to, as huggingface_hub's upload calls it)."""
    reading = {"convert", "eval", "train", "retrofit", "estimate", "plan"}
    having = {name for name, parser in _commands().items() if "--revision" in _flags(parser)}
    assert having == reading | {"push"}
    for name in reading:
        action = next(a for a in _commands()[name]._actions if "--revision" in a.option_strings)
        assert action.help and action.help.startswith("Hub revision"), name


def test_global_flags_after_the_subcommand(tmp_path: Path) -> None:
    args = build_parser().parse_args(["estimate", "m", "-q", "--debug"])
    assert (args.quiet, args.debug) == (True, True)
    args = build_parser().parse_args(["-q", "estimate", "m"])
    assert (args.quiet, args.debug) == (True, False)
    missing = str(tmp_path / "missing")
    with pytest.raises(GQARetrofitError):  # --debug after the command shows the exception itself
        main(["eval", missing, "--eval-data", missing, "--debug"])


@pytest.mark.parametrize(
    ("command", "dest"),
    [
        (["eval", "m", "--dtype"], "dtype"),
        (["bench", "m", "--dtype"], "dtype"),
        (["convert", "s", "o", "--dtype"], "dtype"),
        (["train", "m", "o", "--dtype"], "dtype"),
        (["retrofit", "s", "o", "--dtype"], "dtype"),
    ],
)
def test_dtype_spellings_are_one_value(command: list[str], dest: str) -> None:
    values = {getattr(build_parser().parse_args([*command, s]), dest) for s in ("bf16", "bfloat16")}
    assert values == {"bf16"}


def test_train_help_recommends_a_launch_of_two_processes() -> None:
    parser = _commands()["train"]
    help_text = parser.format_help()
    assert "accelerate launch --config_file examples/accelerate/ddp_cpu.yaml" in help_text
    config = yaml.safe_load((ROOT / "examples/accelerate/ddp_cpu.yaml").read_text())
    # accelerate's --cpu starts one process; the torchrun launcher (MULTI_GPU) starts N
    assert (config["distributed_type"], config["num_processes"]) == ("MULTI_GPU", 2)
    assert "--cpu --num_processes" not in help_text
