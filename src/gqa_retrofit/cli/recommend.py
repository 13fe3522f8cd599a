"""``gqa-retrofit recommend``: the cost-optimal head configuration from your own scaling runs."""

from __future__ import annotations

import argparse
from typing import Any

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
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=0.9,
        help="weight of memory in Z (default 0.9; 1 = memory only, 0 = FLOPs)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="memory exponent (default 0.5)")
    parser.add_argument(
        "--beta", type=float, default=1.0 / 3.0, help="FLOPs exponent (default 1/3)"
    )
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


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _table(result: Any, shown: list[Any]) -> str:
    lines = [
        f"target loss {result.target_loss:g} at context {result.context:,}; Z = "
        f"{result.objective.lam:g}*M^{result.objective.alpha:.3g} + "
        f"{1 - result.objective.lam:.3g}*C^{result.objective.beta:.3g} "
        "(M: values, eq. 4; C: decode FLOPs/token, eq. 3)",
        "",
        "fits: loss(N) = (a/N)^b + E",
        f"{'heads:kv':>9} {'a':>10} {'b':>12} {'E':>14} {'R2':>8} {'runs':>5}",
    ]
    for config, fit in sorted(result.fits.items()):
        lines.append(
            f"{config.label:>9} {fit.a:>10.3g} {fit.b:>6.3f}±{fit.b_stderr:<5.3f} "
            f"{fit.e:>7.4f}±{fit.e_stderr:<6.4f} {fit.r2:>8.5f} {fit.points:>5}"
        )
    savings = result.baseline is not None
    head = (
        f"{'rank':>4} {'heads:kv':>9} {'N*':>9} {'±%':>4} {'L':>4} {'d':>6} {'memory GB':>10} "
        f"{'FLOPs/tok':>10} {'Z':>10} {'pareto':>6}"
    )
    if savings:
        head += f" {'dM %':>7} {'dC %':>7} {'dZ %':>7}"
    lines += ["", head]
    for rec in shown:
        sigma = "" if rec.params_log_stderr is None else f"{100 * rec.params_log_stderr:.0f}"
        row = (
            f"{rec.rank:>4} {rec.config.label:>9} {_fmt(rec.params):>9} {sigma:>4} {rec.layers:>4} "
            f"{rec.hidden:>6} {rec.memory_bytes / 1e9:>10.3f} {_fmt(rec.flops):>10} "
            f"{rec.z:>10.1f} {'*' if rec.pareto else '':>6}"
        )
        if savings:
            row += "".join(f" {rec.change_percent[k]:>+7.1f}" for k in ("memory", "flops", "z"))
        lines.append(row)
    if savings:
        lines.append(
            f"dM, dC, dZ: % change against the baseline {result.baseline.config.label} "
            "(negative = cheaper)"
        )
    for label, reason in {**result.unreachable, **result.refused_fits}.items():
        lines.append(f"left out {label}: {reason}")
    best = result.best
    lines.append("±%: one-sigma uncertainty of N* from the fit (delta method)")
    lines.append(
        f"best: heads {best.heads}, kv_heads {best.kv_heads}, N* {best.params:.4g} "
        f"(L {best.layers}, d {best.hidden}, head_dim {best.head_dim})"
    )
    return "\n".join(lines)


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
        shown = result.recommendations[: args.top] if args.top > 0 else result.recommendations
        print(_table(result, shown))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0
