"""``gqa-retrofit eval MODEL --data PATH``: perplexity on held-out text."""

from __future__ import annotations

import argparse

from ..devices import DEVICE_HELP
from ._util import positive_int, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity of a model on a text file",
        description="Perplexity on non-overlapping windows of a text file (loss over the "
        "seq_len - 1 predicted tokens of each window).",
    )
    parser.add_argument("model", help="local checkpoint directory or Hub id")
    parser.add_argument("--data", required=True, help="UTF-8 text file")
    parser.add_argument("--seq-len", type=int, default=512, help="window length (default 512)")
    parser.add_argument(
        "--max-windows", type=int, default=16, help="evaluate the first N windows (default 16)"
    )
    parser.add_argument("--all-windows", action="store_true", help="evaluate every window")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="windows per forward")
    parser.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, float16")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow custom model code from the checkpoint",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.perplexity import evaluate_perplexity

    result = evaluate_perplexity(
        args.model,
        args.data,
        seq_len=args.seq_len,
        max_windows=None if args.all_windows else args.max_windows,
        batch_size=args.batch_size,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
    )
    if args.json:
        print_json({"model": args.model, **result.to_dict()})
    else:
        print(
            f"perplexity {result.perplexity:.2f} (loss {result.loss:.4f}) over {result.tokens} "
            f"predicted tokens in {result.windows} windows of {result.seq_len}"
        )
    return 0
