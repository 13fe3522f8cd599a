"""``gqa-retrofit verify OUT``: check a converted checkpoint (manifest, tensors, forward)."""

from __future__ import annotations

import argparse
from typing import Any

from ._util import print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a converted checkpoint against its manifest and config",
        description="Check a directory written by `gqa-retrofit convert`: the manifest matches "
        "the files, every tensor is present with the shape the config needs, no NaN/Inf, and "
        "the model loads and runs a short forward pass. Exit 0 when all checks pass, 2 if not.",
    )
    parser.add_argument("directory", metavar="OUT", help="converted checkpoint directory")
    parser.add_argument(
        "--no-load", action="store_true", help="skip loading the model and the forward pass"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..conversion.verify import verify_checkpoint
    from ..errors import ConversionError

    report = verify_checkpoint(args.directory, load=not args.no_load)
    if args.json:
        print_json(report.to_dict())
    else:
        for check in report.checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<9} {check.detail}")
    if not report.ok:
        raise ConversionError(
            f"{args.directory!r} failed verification: " + "; ".join(report.problems)
        )
    return 0
