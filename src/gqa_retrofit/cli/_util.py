"""Small helpers shared by subcommand modules (argument types, JSON output)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

_SIZE_SUFFIX = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def context_length(text: str) -> int:
    """Parse a context length such as ``4096``, ``4k``, ``32K``, ``128k``, ``1m`` (k = 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid context length {text!r}: use a positive integer, optionally with k or m "
            "(e.g. 4096, 32k, 128K)"
        )
    value = int(match.group(1)) * _SIZE_SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid context length {text!r}: must be positive")
    return value


def context_list(text: str) -> list[int]:
    """Parse a comma-separated list of context lengths."""
    return [context_length(part) for part in text.split(",") if part.strip()]


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
