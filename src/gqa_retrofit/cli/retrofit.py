"""``gqa-retrofit retrofit``: estimate, convert, evaluate, train, evaluate, bench, card, push."""

from __future__ import annotations

import argparse
from typing import Any

from ..devices import DEVICE_HELP
from ._util import context_list, positive_int, print_json


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected an integer >= 0"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be >= 0")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retrofit",
        help="the whole path in one command: estimate, convert, evaluate, train, bench, card, push",
        description="Retrofit SRC to fewer KV (and query) heads: estimate the costs before and "
        "after, convert, evaluate zero-shot, train with distillation from SRC, evaluate, "
        "benchmark decoding, write a report and a model card, optionally push. Every stage "
        "records its result in OUT; rerunning the same command resumes at the first unfinished "
        "stage.",
    )
    parser.add_argument("src", metavar="SRC", help="source checkpoint: directory or Hub id")
    parser.add_argument("out", metavar="OUT", help="output directory of the run")
    parser.add_argument("--kv-heads", type=positive_int, help="KV heads after conversion")
    parser.add_argument("--heads", type=positive_int, help="query heads after conversion")
    parser.add_argument("--method", help="pooling method (default: the converter's default)")
    parser.add_argument("--calibration", nargs="+", metavar="TEXT", help="calibration text files")
    parser.add_argument("--calibration-tokens", type=positive_int, help="calibration tokens")
    parser.add_argument(
        "--train-data", nargs="+", metavar="DATA", help="training data (files, globs, datasets)"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--train-steps", type=_non_negative_int, help="optimizer steps")
    budget.add_argument("--train-tokens", type=_non_negative_int, help="training tokens")
    parser.add_argument(
        "--teacher", choices=["auto", "none"], help="auto: distil from SRC (default)"
    )
    parser.add_argument("--eval-data", metavar="TEXT", help="held-out text for perplexity")
    parser.add_argument("--eval-windows", type=positive_int, help="evaluation windows (16)")
    parser.add_argument(
        "--bench-context",
        type=context_list,
        dest="bench_contexts",
        help="decode benchmark contexts (2048)",
    )
    parser.add_argument("--bench-repeats", type=positive_int, help="benchmark runs (3)")
    parser.add_argument("--push", metavar="REPO_ID", help="push the result to this Hub repo")
    parser.add_argument(
        "--private", action="store_true", default=None, help="create the Hub repo private"
    )
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON file with these options")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan with time and memory estimates"
    )
    parser.add_argument("--device", help=f"{DEVICE_HELP} (default: auto)")
    parser.add_argument("--overwrite", action="store_true", help="start over in OUT")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.retrofit import retrofit
    from ..pipeline.stages import format_plan

    result = retrofit(
        args.src,
        args.out,
        kv_heads=args.kv_heads,
        heads=args.heads,
        method=args.method,
        calibration=args.calibration,
        calibration_tokens=args.calibration_tokens,
        train_data=args.train_data,
        train_steps=args.train_steps,
        train_tokens=args.train_tokens,
        teacher=args.teacher,
        eval_data=args.eval_data,
        eval_windows=args.eval_windows,
        bench_contexts=args.bench_contexts,
        bench_repeats=args.bench_repeats,
        push=args.push,
        private=args.private,
        config=args.config,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        **({"device": args.device} if args.device else {}),
    )
    if args.dry_run:
        if args.json:
            print_json({"plan": result.plan})
        else:
            print(f"plan for {args.out}:")
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
