"""``gqa-retrofit convert SRC OUT --kv-heads K``: rewrite a checkpoint to fewer heads, streamed."""

from __future__ import annotations

import argparse
from typing import Any

from ..devices import DEVICE_HELP
from ._util import positive_int, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="rewrite a checkpoint to fewer KV (and query) heads, shard by shard",
        description="Rewrite checkpoint SRC (local directory or Hub id) with fewer KV heads (and "
        "optionally fewer query heads) into OUT, streaming shard by shard. OUT is written to a "
        "temporary sibling and renamed when complete; SRC is never modified.",
    )
    parser.add_argument("src", metavar="SRC", help="checkpoint directory or Hub id")
    parser.add_argument("out", metavar="OUT", help="output directory (must not exist)")
    parser.add_argument(
        "--kv-heads",
        type=positive_int,
        required=True,
        metavar="K",
        help="KV heads after conversion (divides the source's KV heads)",
    )
    parser.add_argument(
        "--heads",
        type=positive_int,
        default=None,
        metavar="H",
        help="query heads after conversion (default: keep)",
    )
    parser.add_argument(
        "--method",
        default=None,
        metavar="NAME",
        help="pooling method (default: mean; the best data-aware method when "
        "--calibration is given)",
    )
    parser.add_argument(
        "--calibration",
        action="append",
        default=None,
        metavar="PATH",
        help="calibration text file for data-aware methods (repeatable; "
        "default: the embedded corpus' training split)",
    )
    parser.add_argument(
        "--calibration-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="calibration token budget",
    )
    parser.add_argument(
        "--dtype",
        default="keep",
        choices=["keep", "bf16", "fp16", "fp32"],
        help="dtype of floating-point tensors written (default: keep)",
    )
    parser.add_argument(
        "--max-shard-size",
        default="5GB",
        metavar="SIZE",
        help="largest output shard, e.g. 500MB, 5GB (default: 5GB)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--revision", default=None, help="Hub revision of SRC")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..conversion.convert import DEFAULT_CALIBRATION_TOKENS, convert_checkpoint

    report = convert_checkpoint(
        args.src,
        args.out,
        kv_heads=args.kv_heads,
        heads=args.heads,
        method=args.method,
        calibration=args.calibration,
        calibration_tokens=args.calibration_tokens or DEFAULT_CALIBRATION_TOKENS,
        dtype=args.dtype,
        device=args.device,
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
        revision=args.revision,
    )
    if args.json:
        print_json(report.to_dict())
        return 0
    mib = report.bytes_written / 1024**2
    print(f"converted {report.source} -> {report.output}")
    print(f"  model type  {report.model_type}, {report.layers} layers, method {report.method}")
    print(
        f"  query heads {report.heads_before} -> {report.heads_after}, "
        f"KV heads {report.kv_heads_before} -> {report.kv_heads_after}, "
        f"head_dim {report.head_dim}"
    )
    print(
        f"  wrote {report.tensors} tensors, {mib:.1f} MiB in {len(report.files)} file(s), "
        f"{report.seconds:.1f} s"
    )
    return 0
