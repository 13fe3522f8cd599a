"""``gqa-retrofit estimate``: parameters, KV cache, FLOPs and memory of models, from configs."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from ..devices import COST_DTYPES
from ..errors import ConfigError

_WHAT_IF = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*(?::\s*(\d+)\s*)?$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="cost of running models (params, KV cache, FLOPs, memory) from their configs",
        description="Estimate parameters, KV-cache bytes, decode/prefill FLOPs and memory of "
        "models from their config.json only (no weights are read). MODEL is a local model "
        "directory, a config.json path or a Hub id. FLOPs are matmul FLOPs (2 per "
        "multiply-accumulate), prefill is causal.",
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="model dir, config.json or Hub id"
    )
    parser.add_argument(
        "--context",
        action="append",
        metavar="T[,T...]",
        help="context lengths, e.g. 4k,32k,128K (k = 1024; repeatable; default 4k,32k,128k)",
    )
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        metavar="HEADS:KV_HEADS[:HEAD_DIM]",
        help="also cost the model retrofitted to this head geometry (repeatable)",
    )
    parser.add_argument(
        "--dtype",
        default="bf16",
        help=f"weight dtype: {', '.join(COST_DTYPES)} (default bf16)",
    )
    add_serving_arguments(parser)
    parser.add_argument("--json", action="store_true", help='print {"models": [...]} as JSON')
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="write KV memory and decode FLOPs vs context to FILE (.png, .svg or .pdf)",
    )
    from ._util import add_revision_argument

    add_revision_argument(parser)
    parser.set_defaults(func=run)


def add_serving_arguments(parser: Any, kv_default: str = "--dtype") -> None:
    """``--kv-dtype``, ``--batch``, ``--tp``, ``--dcp``: the serving assumptions shared by
    ``estimate``, ``plan`` and ``recommend``."""
    parser.add_argument(
        "--kv-dtype",
        default=None,
        help="KV-cache dtype: fp32, bf16, fp16, fp8 (= fp8_e4m3), fp8_e4m3, fp8_e5m2, int8, "
        "int4; int8/int4 count one fp16 scale per 32 values (8.5/4.5 bits) "
        f"(default: {kv_default})",
    )
    parser.add_argument("--batch", default="1", help="sequences decoded together (default 1)")
    parser.add_argument(
        "--tp",
        default="1",
        help="tensor parallel degree of the serving engine: per-device cache bytes with vLLM's "
        "rule (KV heads replicated tp / n_kv times when tp > n_kv) (default 1)",
    )
    parser.add_argument(
        "--dcp",
        default="1",
        help="decode context parallel degree (vLLM -dcp; divides --tp, splits the cached "
        "tokens across the KV replicas) (default 1)",
    )


def serving_options(args: argparse.Namespace, default_kv: str = "bf16") -> dict[str, Any]:
    """The parsed serving flags as keyword arguments of the API.

    Raises:
        ConfigError: a non-positive or non-integer count, an unknown KV dtype.
    """
    from ..cost.serving import kv_dtype

    return {
        "kv_dtype": kv_dtype(args.kv_dtype or default_kv).name,
        "batch": positive_int(args.batch, "--batch"),
        "tp": positive_int(args.tp, "--tp"),
        "dcp": positive_int(args.dcp, "--dcp"),
    }


def warn_replication(serving: dict[str, Any] | None, label: str) -> None:
    """Print the KV-replication warning of ``serving["by_config"][label]`` on stderr."""
    entry = (serving or {}).get("by_config", {}).get(label, {})
    if entry.get("warning"):
        print(f"warning: {label}: {entry['warning']}", file=sys.stderr)


def positive_int(text: str, flag: str) -> int:
    """Parse a positive integer flag value.

    Raises:
        ConfigError: not a positive integer (the message names the flag).
    """
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise ConfigError(f"invalid {flag} {text!r}: must be a positive integer")
    return value


def parse_what_if(text: str) -> tuple[int, int, int | None]:
    """Parse ``HEADS:KV_HEADS[:HEAD_DIM]``.

    Raises:
        ConfigError: not of that form.
    """
    match = _WHAT_IF.match(text)
    if not match:
        raise ConfigError(
            f"invalid --what-if {text!r}: expected HEADS:KV_HEADS[:HEAD_DIM], e.g. 32:8 or 16:2:128"
        )
    heads, kv_heads, head_dim = match.groups()
    return int(heads), int(kv_heads), int(head_dim) if head_dim else None


def parse_contexts(values: list[str] | None) -> list[int]:
    """Parse ``--context`` values (comma lists, k/m suffixes).

    Raises:
        ConfigError: a value that is not a positive length.
    """
    from ._util import context_list

    if not values:
        from ..cost.report import DEFAULT_CONTEXTS

        return list(DEFAULT_CONTEXTS)
    contexts: list[int] = []
    for value in values:
        try:
            parsed = context_list(value)
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"--context: {err}") from None
        if not parsed:
            raise ConfigError(f"--context: no context length in {value!r}")
        contexts.extend(parsed)
    return contexts


def run(args: argparse.Namespace) -> int:
    from ..cost.formulas import dtype_bits
    from ..cost.report import estimate, reports_to_markdown
    from ._util import print_json

    contexts = parse_contexts(args.context)
    what_if = [parse_what_if(text) for text in args.what_if]
    dtype_bits(args.dtype)
    serving = serving_options(args, default_kv=args.dtype)
    if args.plot:
        from ..cost.plot import check_plot_path

        check_plot_path(args.plot)

    reports = [
        estimate(
            model,
            contexts=contexts,
            dtype=args.dtype,
            what_if=what_if,
            revision=args.revision,
            **serving,
        )
        for model in args.models
    ]
    for report in reports:
        for variant in (report, *report.what_if):
            warning = variant.to_dict()["serving"].get("warning")
            if warning:
                print(f"warning: {variant.label}: {warning}", file=sys.stderr)
    if args.plot:
        from ..cost.plot import plot_reports

        plot_reports(reports, args.plot)
    if args.json:
        print_json({"models": [r.to_dict() for r in reports]})
    else:
        print(reports_to_markdown(reports), end="")
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0
