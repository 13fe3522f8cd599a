"""The one options regime (``gqa_retrofit._options``): flags, files and mappings from one field."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from gqa_retrofit._options import Options, option, read_config_file, same_as
from gqa_retrofit.errors import ConfigError, GQARetrofitError


@dataclass
class _Opts(Options):
    label: ClassVar[str] = "demo"
    error: ClassVar[type[GQARetrofitError]] = ConfigError

    src: str = option("", "source", positional=True)
    steps: int | None = option(None, "steps", aliases=("max-steps",), minimum=1)
    data: list[str] = option(help="data", default_factory=list, metavar="DATA")
    kind: str = option("a", "kind", choices=("a", "b"))
    ratio: float = option(0.5, "ratio", minimum=0.0, maximum=1.0)
    fast: bool = option(False, "go fast")
    hidden: dict[str, int] = option(help="file only", default_factory=dict, cli=False)
    overwrite: bool = option(False, "start over", recorded=False)


@dataclass
class _Reuse(Options):
    steps: int | None = same_as(_Opts, "steps", help="other steps", aliases=())


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _Opts.add_arguments(parser)
    return parser.parse_args(argv)


def test_mapping_keys_with_dashes_aliases_and_scalar_lists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _Opts.from_dict({"steps": 3, "data": "a.txt"}) == _Opts(steps=3, data=["a.txt"])
    assert _Opts.from_dict({"max-steps": 4}).steps == 4
    assert capsys.readouterr().err == (
        "gqa-retrofit: note: 'max-steps' is a deprecated name; use 'steps'\n"
    )


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown demo option 'step'; valid: data, fast, hidden, kind, overwrite, ratio, "
        r"src, steps$",
    ):
        _Opts.from_dict({"step": 3})


def test_flags_are_generated_and_only_given_ones_are_set() -> None:
    args = _parse(["s", "--steps", "2", "--data", "x", "y", "--data", "z", "--fast"])
    assert vars(args) == {"src": "s", "steps": 2, "data": ["x", "y", "z"], "fast": True}
    assert _Opts.from_args(args) == _Opts(src="s", steps=2, data=["x", "y", "z"], fast=True)
    assert vars(_parse([])) == {}
    with pytest.raises(SystemExit):
        _parse(["--hidden", "1"])  # cli=False: no flag
    with pytest.raises(SystemExit):
        _parse(["--kind", "c"])  # choices come from the declaration


def test_old_flag_is_hidden_and_announced(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    _Opts.add_arguments(parser)
    assert "--max-steps" not in parser.format_help()
    assert _Opts.from_args(parser.parse_args(["--max-steps", "5"])).steps == 5
    assert "--max-steps is a deprecated name; use --steps" in capsys.readouterr().err


def test_config_file_under_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("max-steps: 9\nkind: b\nhidden: {x: 1}\n")
    opts = _Opts.from_args(_parse(["--config", str(config), "--steps", "2"]))
    assert (opts.steps, opts.kind, opts.hidden) == (2, "b", {"x": 1})  # the flag wins


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": 0}, "--steps 0 is invalid: must be >= 1"),
        ({"steps": "3"}, "--steps '3' is invalid: must be an integer"),
        ({"steps": True}, "--steps True is invalid: must be an integer"),
        ({"kind": "c"}, "--kind 'c' is invalid: choose one of a, b"),
        ({"ratio": 1.5}, r"--ratio 1.5 is invalid: must be in \[0.0, 1.0\]"),
        ({"ratio": float("nan")}, "--ratio nan is invalid: must be a finite number"),
        ({"data": "x"}, None),  # wrapped into a list
        ({"src": 3}, "SRC 3 is invalid: must be a string"),
    ],
)
def test_check_fields_names_flag_value_and_what_is_valid(values: dict, message: str) -> None:
    opts = _Opts.from_dict(values)
    if message is None:
        assert opts.check_fields() is opts
        return
    with pytest.raises(ConfigError, match=f"^{message}$"):
        opts.check_fields()


def test_same_as_reuses_the_declaration() -> None:
    reused = _Reuse.option_fields()[0]
    assert reused.metadata["help"] == "other steps"
    assert reused.metadata["minimum"] == 1 and reused.metadata["aliases"] == ()
    with pytest.raises(ConfigError, match="--steps 0 is invalid: must be >= 1"):
        _Reuse(steps=0).check_fields()


def test_recorded_leaves_run_controls_out() -> None:
    assert "overwrite" not in _Opts(overwrite=True).recorded()
    assert _Opts().recorded()["kind"] == "a"


def test_yaml_json_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("steps: 4\ndata-files: [x]\n")
    assert read_config_file(tmp_path / "a.yaml", error=ConfigError) == {
        "steps": 4,
        "data-files": ["x"],
    }
    (tmp_path / "b.json").write_text('{"steps": 5}')
    assert read_config_file(tmp_path / "b.json", error=ConfigError) == {"steps": 5}
    (tmp_path / "empty.yaml").write_text("")
    assert read_config_file(tmp_path / "empty.yaml", error=ConfigError) == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(tmp_path / "list.yaml", error=ConfigError)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        read_config_file(tmp_path / "bad.json", error=ConfigError)
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.yaml", error=ConfigError)


@dataclass(frozen=True)
class _Data:  # a plain dataclass with help metadata, like the data loader's options
    text_column: str = field(default="text", metadata={"help": "column"})
    data_seed: int = field(default=0, metadata={"help": "seed"})


@dataclass
class _WithData(Options):
    steps: int = option(1, "steps", minimum=1)
    data: _Data = option(help="data loading", default_factory=_Data, nested=True)


def test_nested_options_become_flags_and_keys(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    _WithData.add_arguments(parser)
    assert "--text-column" in parser.format_help() and "--data-seed" in parser.format_help()
    opts = _WithData.from_args(parser.parse_args(["--text-column", "body", "--steps", "2"]))
    assert opts == _WithData(steps=2, data=_Data(text_column="body"))
    assert _WithData.from_dict({"data": {"data-seed": 3}}).data == _Data(data_seed=3)
    assert _WithData.from_dict({"data_seed": 4}).to_dict() == {
        "steps": 1,
        "data": {"text_column": "text", "data_seed": 4},
    }
    with pytest.raises(ConfigError, match=r"unknown option data.seed"):
        _WithData.from_dict({"data": {"seed": 1}})
