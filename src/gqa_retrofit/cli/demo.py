"""``gqa-retrofit demo``: retrofit the embedded SmolLM2 from 3 to 1 KV heads and summarise."""

from __future__ import annotations

import argparse
from typing import Any

from ..pipeline.demo import DEMO_TRAIN_STEPS
from ._util import context_list, positive_int, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="retrofit the embedded SmolLM2-135M from 3 to 1 KV heads (about 7 min on 2 cores)",
        description="Run the whole retrofit on the embedded default model and text: best "
        "data-aware conversion, short distillation, perplexity before/after, decode benchmark, "
        "report and model card; then print a summary. Rerunning resumes an interrupted demo.",
    )
    parser.add_argument("--out", default="demo-output", help="output directory (demo-output)")
    parser.add_argument(
        "--train-steps",
        type=positive_int,
        default=None,
        help=f"distillation steps ({DEMO_TRAIN_STEPS})",
    )
    parser.add_argument("--eval-windows", type=positive_int, default=16, help="windows (16)")
    parser.add_argument(
        "--bench-context", type=context_list, default=[2048], help="benchmark contexts (2048)"
    )
    parser.add_argument("--bench-repeats", type=positive_int, default=3, help="runs (3)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    parser.add_argument("--overwrite", action="store_true", help="start over in --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.demo import DemoSummary, demo, format_summary
    from ..pipeline.stages import format_plan

    result = demo(
        args.out,
        train_steps=args.train_steps or DEMO_TRAIN_STEPS,
        eval_windows=args.eval_windows,
        bench_contexts=tuple(args.bench_context),
        bench_repeats=args.bench_repeats,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
    )
    if not isinstance(result, DemoSummary):
        if args.json:
            print_json({"plan": result.plan})
        else:
            print(f"plan for {args.out}:")
            print(format_plan(result.plan))
        return 0
    if args.json:
        print_json(result.to_dict())
    else:
        print(format_summary(result))
    return 0
