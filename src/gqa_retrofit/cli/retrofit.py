"""``gqa-retrofit retrofit``: estimate, convert, evaluate, train, evaluate, bench, card, push."""

from __future__ import annotations

import argparse
from typing import Any

from ..pipeline.options import RetrofitOptions
from ._util import print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retrofit",
        help="the whole path in one command: estimate, convert, evaluate, train, bench, card, push",
        description="Retrofit SRC to fewer KV (and query) heads: estimate the costs before and "
        "after, convert (data-aware, calibrated on --calibration or else --train-data), evaluate "
        "zero-shot, train with distillation from SRC, evaluate, benchmark decoding, write a "
        "report and a model card, optionally push. Every option is checked (including the Hub "
        "token for --push) before the first stage; every stage records its result in OUT and "
        "rerunning the same command resumes at the first unfinished stage.",
    )
    RetrofitOptions.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.retrofit import retrofit
    from ..pipeline.stages import format_plan

    options = RetrofitOptions.from_args(args)
    result = retrofit(options)
    if options.dry_run:
        if args.json:
            print_json({"plan": result.plan})
        else:
            print(f"plan for {options.out}:")
            print(format_plan(result.plan))
        return 0
    if args.json:
        print_json(
            {
                "out": str(result.out),
                "final_model": str(result.final_model),
                "results": result.results,
            }
        )
        return 0
    print(summary_lines(result.results, result.out, result.final_model))
    return 0


def summary_lines(results: dict[str, dict[str, Any]], out: Any, final_model: Any) -> str:
    """A short human summary of a finished run."""
    from ..pipeline.report import perplexities

    lines = [f"retrofit finished: {final_model}"]
    ppl = perplexities(results)
    if ppl:
        lines.append("perplexity: " + ", ".join(f"{k} {v:,.2f}" for k, v in ppl.items()))
    for row in results.get("bench", {}).get("results", []):
        lines.append(
            f"{row['model']:<9} context {row['context']:>6}: KV cache {row['kv_cache_bytes']:,} B, "
            f"decode {row['decode_tokens_per_second']:.2f} tokens/s"
        )
    lines.append(f"report: {out}/report.md")
    if results.get("push", {}).get("url"):
        lines.append(f"pushed: {results['push']['url']}")
    return "\n".join(lines)
