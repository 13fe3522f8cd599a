"""The CLI skeleton: version, help, exit codes, error mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gqa_retrofit import __version__
from gqa_retrofit.cli._util import context_length, context_list
from gqa_retrofit.cli.main import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gqa-retrofit {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: gqa-retrofit" in capsys.readouterr().out


def test_subcommands_are_discovered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("assets", "eval"):
        assert command in out


def test_user_error_is_one_line_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    assert main(["eval", str(tmp_path), "--eval-data", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gqa-retrofit eval: error: data file {str(missing)!r} does not exist"
    assert "Traceback" not in err


def test_console_script_runs_in_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gqa_retrofit.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"gqa-retrofit {__version__}"


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("4k", 4096), ("32K", 32768), ("128k", 131072), ("1m", 1048576)],
)
def test_context_length_parsing(text: str, value: int) -> None:
    assert context_length(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "abc", "4kb", ""])
def test_context_length_rejects_bad_values(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="invalid context length"):
        context_length(text)


def test_context_list() -> None:
    assert context_list("2k,8k") == [2048, 8192]


def test_cli_reference_is_current() -> None:
    """docs/cli.md is generated from the parser; regenerate it when a command changes."""
    from pathlib import Path

    from gqa_retrofit.cli._reference import render_reference

    committed = Path(__file__).parents[2] / "docs" / "cli.md"
    assert committed.read_text(encoding="utf-8") == render_reference(), (
        "docs/cli.md is stale: run python -m gqa_retrofit.cli._reference > docs/cli.md"
    )
