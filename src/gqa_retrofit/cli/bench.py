"""``gqa-retrofit bench``: decode speed and measured KV-cache bytes of models side by side."""

from __future__ import annotations

import argparse
from typing import Any

from ._util import context_list, positive_int, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure prefill time, decode tokens/s and KV-cache bytes of models side by side",
        description="Greedy-decode random prompts of each context length with every model "
        "(runs interleaved model by model, repeated), and report prefill seconds, decode "
        "tokens/s (median and spread) and the KV-cache bytes measured from the cache tensors "
        "next to the estimator's prediction.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model directory or Hub id")
    parser.add_argument(
        "--context",
        type=context_list,
        default=[2048, 8192],
        help="comma-separated prompt lengths, e.g. 2048,8k (default: 2048,8192)",
    )
    parser.add_argument("--new-tokens", type=positive_int, default=64, help="decode steps (64)")
    parser.add_argument("--batch", type=positive_int, default=1, help="sequences per run (1)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="runs per model (5)")
    parser.add_argument(
        "--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="weights dtype (fp32)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code (off)"
    )
    parser.add_argument("--json", action="store_true", help='print {"results": [...]}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.bench import benchmark_decode, results_to_markdown

    results = benchmark_decode(
        args.models,
        contexts=args.context,
        new_tokens=args.new_tokens,
        batch=args.batch,
        repeats=args.repeats,
        dtype=args.dtype,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
    )
    if args.json:
        print_json({"results": results})
    else:
        print(results_to_markdown(results))
    return 0
