"""Small helpers shared by subcommand modules (argument types, JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._options import context_length, context_list

__all__ = [
    "add_revision_argument",
    "context_length",
    "context_list",
    "positive_int",
    "print_json",
]


def add_revision_argument(parser: argparse.ArgumentParser) -> None:
    """``--revision REV`` of a command with a plain parser, as the options regime declares it
    (:class:`~gqa_retrofit._vocabulary.SharedOptions`): the Hub revision of the model read."""
    from dataclasses import fields

    from .._vocabulary import SharedOptions

    declared = next(f for f in fields(SharedOptions) if f.name == "revision")
    parser.add_argument(
        "--revision",
        default=None,
        metavar=declared.metadata["metavar"],
        help=declared.metadata["help"],
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected a positive integer"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a positive integer")
    return value


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
