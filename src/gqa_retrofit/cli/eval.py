"""``gqa-retrofit eval MODEL --eval-data TEXT``: perplexity on held-out text."""

from __future__ import annotations

import argparse

from ..evaluation.options import EvalOptions
from ._util import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity of a model on a text file",
        description="Perplexity on non-overlapping windows of a text file (loss over the "
        "seq_len - 1 predicted tokens of each window).",
    )
    EvalOptions.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = EvalOptions.from_args(args)
    result = options.run()
    if args.json:
        print_json({"model": options.model, **result.to_dict()})
    else:
        print(
            f"perplexity {result.perplexity:.2f} (loss {result.loss:.4f}) over {result.tokens} "
            f"predicted tokens in {result.windows} windows of {result.seq_len}"
        )
    return 0
