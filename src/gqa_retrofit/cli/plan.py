"""``gqa-retrofit plan``: which head configuration to retrofit an existing checkpoint to."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from ._objective import add_objective_arguments
from ._util import add_revision_argument, context_length, print_json
from .estimate import add_serving_arguments, serving_options

_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def byte_size(text: str) -> int:
    """Parse ``16GiB``, ``16GB``, ``500MiB`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", text, re.IGNORECASE)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _BYTE_UNITS or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use a positive number with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 16GiB"
        )
    return int(float(match.group(1)) * _BYTE_UNITS[unit])


def flops_value(text: str) -> float:
    """Parse ``2e9``, ``2G``, ``1.5T`` (SI prefixes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgtp]?)\s*", text, re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid FLOPs {text!r}: use a positive number, optionally with k, M, G, T, P "
            "(e.g. 2e9 or 2G)"
        )
    return float(match.group(1)) * _SI[match.group(2).lower()]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="rank the head configurations a retrofit of MODEL can reach, by exact cost",
        description="Enumerate the head configurations `gqa-retrofit convert` can reach from "
        "MODEL (KV heads dividing the current KV count; query-head reductions), cost each "
        "exactly (as `estimate --what-if`), rank by Z = lambda*M^alpha + (1-lambda)*C^beta "
        "(M: weights + KV cache bytes, C: decode FLOPs per token at --context), mark the "
        "Pareto front and the budget, and print the convert command for the chosen one.",
    )
    parser.add_argument("model", metavar="MODEL", help="model dir, config.json or Hub id")
    parser.add_argument(
        "--context",
        required=True,
        type=context_length,
        help="deployment context length (e.g. 128k)",
    )
    parser.add_argument(
        "--memory-budget",
        type=byte_size,
        metavar="SIZE",
        help="weights + KV cache must fit, e.g. 16GiB",
    )
    parser.add_argument(
        "--max-flops",
        type=flops_value,
        metavar="FLOPS",
        help="largest decode FLOPs per token at --context, e.g. 2e9 or 2G",
    )
    parser.add_argument(
        "--min-heads",
        type=int,
        default=None,
        help="fewest query heads the chosen configuration may keep (default: "
        "all, i.e. only KV heads change)",
    )
    add_objective_arguments(parser)
    parser.add_argument("--dtype", default="bf16", help="weights and KV dtype (default bf16)")
    add_serving_arguments(parser)
    parser.add_argument("--out", default=None, help="OUT directory in the printed command")
    add_revision_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..recipe.plan import plan_retrofit

    plan = plan_retrofit(
        args.model,
        context=args.context,
        memory_budget=args.memory_budget,
        max_flops=args.max_flops,
        lam=args.lam,
        alpha=args.alpha,
        beta=args.beta,
        dtype=args.dtype,
        min_heads=args.min_heads,
        out=args.out,
        revision=args.revision,
        **serving_options(args, default_kv=args.dtype),
    )
    if plan.warning and plan.chosen is not None:
        print(f"warning: {plan.chosen.config.label}: {plan.warning}", file=sys.stderr)
    if args.json:
        print_json(plan.to_dict())
    else:
        print(plan.to_markdown())
    return 0
