"""Render the CLI reference (``docs/cli.md``) from the argparse parser itself.

``python -m gqa_retrofit.cli._reference > docs/cli.md`` regenerates it; a test keeps the
committed file in step with the parser.
"""

from __future__ import annotations

import argparse
import os

from .main import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(sorted(action.choices.items()))
    return {}


def render_reference() -> str:
    """The Markdown CLI reference: global options, then one section per subcommand."""
    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # stable wrapping, whatever the terminal
    try:
        parser = build_parser()
        parts = [
            "# CLI reference",
            "",
            "Generated from the argparse parser by `python -m gqa_retrofit.cli._reference`; "
            "do not edit by hand.",
            "",
            "Exit codes: 0 success, 2 bad usage or input (one-line reason), 1 other failures.",
            "",
            "## gqa-retrofit",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        for name, sub in _subparsers(parser).items():
            parts += [
                "",
                f"## gqa-retrofit {name}",
                "",
                "```text",
                sub.format_help().rstrip(),
                "```",
            ]
        return "\n".join(parts) + "\n"
    finally:
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns


if __name__ == "__main__":
    print(render_reference(), end="")
