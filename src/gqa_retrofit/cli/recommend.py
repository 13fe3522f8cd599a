"""``gqa-retrofit recommend``: the cost-optimal head configuration from your own scaling runs."""

from __future__ import annotations

import argparse
from typing import Any

from ._objective import add_objective_arguments
from ._util import context_length, print_json
from .estimate import add_serving_arguments, serving_options, warn_replication


def _head_counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"invalid head counts {text!r}: use a comma-separated list of positive integers, "
            "e.g. 1,2,4,8,16,32"
        )
    return values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="cost-optimal head configuration and size from scaling runs (paper Section 4.1)",
        description="Fit loss(N) = (a/N)^b + E per head configuration from your runs, find the "
        "smallest N reaching --target-loss, shape it (L, d) from the paper's aspect-ratio "
        "table, cost it at --context with the paper's C_infer and M_infer, and rank by "
        "Z = lambda*M^alpha + (1-lambda)*C^beta.",
    )
    parser.add_argument(
        "--runs",
        required=True,
        metavar="FILE.csv",
        help="CSV with columns heads, kv_heads, non_embedding_params, loss[, context]",
    )
    parser.add_argument(
        "--context",
        required=True,
        type=context_length,
        help="deployment context length (e.g. 128k)",
    )
    parser.add_argument("--target-loss", required=True, type=float, help="loss to reach")
    add_objective_arguments(parser, lambda_note="; 1 = memory only, 0 = FLOPs")
    parser.add_argument(
        "--baseline", metavar="HEADS:KV", help="configuration to report savings against, e.g. 32:8"
    )
    parser.add_argument(
        "--candidates",
        type=_head_counts,
        metavar="LIST",
        help="head counts to consider for both heads and kv_heads "
        "(default: every configuration in the runs)",
    )
    parser.add_argument(
        "--fit-context",
        type=context_length,
        help="fit only runs trained at this context (when the file mixes them)",
    )
    parser.add_argument("--head-dim", type=int, default=64, help="head size d_h (default 64)")
    parser.add_argument(
        "--sizing",
        choices=("interpolate", "table"),
        default="interpolate",
        help="shape (L, d) for N*: interpolate the paper's aspect ratio and "
        "binary-search L (Appendix B.1, default) or take the nearest row of "
        "the paper's table",
    )
    parser.add_argument(
        "--skip-unfittable",
        action="store_true",
        help="leave out configurations whose fit is refused instead of failing",
    )
    add_serving_arguments(parser, kv_default="bf16")
    parser.add_argument("--top", type=int, default=0, help="rows in the table (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--plot", metavar="FILE", help="write the loss vs M, C, Z plot (png/svg)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..recipe.plot import plot_recipe
    from ..recipe.recommend import recommend
    from ..recipe.search import candidate_head_configs

    candidates = candidate_head_configs(args.candidates) if args.candidates else None
    result = recommend(
        args.runs,
        context=args.context,
        target_loss=args.target_loss,
        lam=args.lam,
        alpha=args.alpha,
        beta=args.beta,
        baseline=args.baseline,
        candidates=candidates,
        fit_context=args.fit_context,
        head_dim=args.head_dim,
        skip_unfittable=args.skip_unfittable,
        sizing=args.sizing,
        **serving_options(args),
    )
    warn_replication(result.serving, result.best.config.label)
    if args.plot:
        plot_recipe(result, args.plot)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.to_markdown(top=args.top))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0
