"""``gqa-retrofit eval MODEL --eval-data TEXT [--probes LIST]``: perplexity and retrieval."""

from __future__ import annotations

import argparse

from ..evaluation.options import EvalOptions
from ..evaluation.retrieval import add_retrieval_arguments
from ._util import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity of a model on a text file, and in-context retrieval probes",
        description="Perplexity on non-overlapping windows of a text file (loss over the "
        "seq_len - 1 predicted tokens of each window); with --probes, passkey retrieval, the "
        "copy probe and long-window perplexity (docs/retrieval.md).",
    )
    EvalOptions.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_retrieval_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.retrieval import (
        evaluate_retrieval,
        format_retrieval,
        plot_retrieval,
        retrieval_options_from_args,
    )

    options = EvalOptions.from_args(args)
    probes = retrieval_options_from_args(args, long_data=options.eval_data)
    if not options.eval_data and probes is None:
        raise ConfigError("eval needs --eval-data (perplexity) or --probes (in-context retrieval)")
    if args.plot and probes is None:
        raise ConfigError("--plot draws the retrieval probes: add --probes")
    output: dict = {"model": options.model}
    lines = []
    if options.eval_data:
        result = options.run()
        output.update(result.to_dict())
        lines.append(
            f"perplexity {result.perplexity:.2f} (loss {result.loss:.4f}) over {result.tokens} "
            f"predicted tokens in {result.windows} windows of {result.seq_len}"
        )
    if probes is not None:
        if not options.model:
            raise ConfigError("no MODEL given: pass a checkpoint directory or Hub id")
        found = evaluate_retrieval(
            options.model,
            options=probes,
            dtype=options.dtype,
            revision=options.revision,
            trust_remote_code=options.trust_remote_code,
        )
        output["retrieval"] = found.to_dict()
        lines += format_retrieval(found)
        if args.plot:
            plot_retrieval({options.model: found}, args.plot)
            lines.append(f"plot: {args.plot}")
    if args.json:
        print_json(output)
    else:
        print("\n".join(lines))
    return 0
