"""``gqa-retrofit eval MODEL --eval-data TEXT [--probes LIST]``: perplexity and retrieval."""

from __future__ import annotations

import argparse

from ..evaluation.options import EvalOptions
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.retrieval import evaluate_retrieval, format_retrieval, plot_retrieval

    options = EvalOptions.from_args(args)
    options.retrieval.check_fields()
    probes = options.retrieval.retrieval_options(long_data=options.eval_data)
    if not options.eval_data and probes is None:
        raise ConfigError("eval needs --eval-data (perplexity) or --probes (in-context retrieval)")
    if options.plot and probes is None:
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
        if options.plot:
            plot_retrieval({options.model: found}, options.plot)
            lines.append(f"plot: {options.plot}")
    if args.json:
        print_json(output)
    else:
        print("\n".join(lines))
    return 0
