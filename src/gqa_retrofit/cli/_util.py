"""Small helpers shared by subcommand modules (argument types, JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._options import context_length, context_list

__all__ = ["context_length", "context_list", "positive_int", "print_json"]


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
