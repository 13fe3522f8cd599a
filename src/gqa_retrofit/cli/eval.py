"""``gqa-retrofit eval MODEL --data PATH [--probes LIST]``: perplexity and in-context retrieval."""

from __future__ import annotations

import argparse

from ..evaluation.retrieval import add_retrieval_arguments
from ._util import positive_int, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity of a model on a text file, and in-context retrieval probes",
        description="Perplexity on non-overlapping windows of a text file (loss over the "
        "seq_len - 1 predicted tokens of each window); with --probes, passkey retrieval, the "
        "copy probe and long-window perplexity (docs/retrieval.md).",
    )
    parser.add_argument("model", help="local checkpoint directory or Hub id")
    parser.add_argument("--data", help="UTF-8 text file (needed unless only --probes run)")
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
    add_retrieval_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.perplexity import evaluate_perplexity
    from ..evaluation.retrieval import (
        evaluate_retrieval,
        format_retrieval,
        plot_retrieval,
        retrieval_options_from_args,
    )

    probes = retrieval_options_from_args(args)
    if args.data is None and probes is None:
        raise ConfigError("eval needs --data (perplexity) or --probes (in-context retrieval)")
    if args.plot and probes is None:
        raise ConfigError("--plot draws the retrieval probes: add --probes")
    output: dict = {"model": args.model}
    lines = []
    if args.data is not None:
        result = evaluate_perplexity(
            args.model,
            args.data,
            seq_len=args.seq_len,
            max_windows=None if args.all_windows else args.max_windows,
            batch_size=args.batch_size,
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
        )
        output.update(result.to_dict())
        lines.append(
            f"perplexity {result.perplexity:.2f} (loss {result.loss:.4f}) over {result.tokens} "
            f"predicted tokens in {result.windows} windows of {result.seq_len}"
        )
    if probes is not None:
        found = evaluate_retrieval(
            args.model, options=probes, dtype=args.dtype, trust_remote_code=args.trust_remote_code
        )
        output["retrieval"] = found.to_dict()
        lines += format_retrieval(found)
        if args.plot:
            plot_retrieval({args.model: found}, args.plot)
            lines.append(f"plot: {args.plot}")
    if args.json:
        print_json(output)
    else:
        print("\n".join(lines))
    return 0
