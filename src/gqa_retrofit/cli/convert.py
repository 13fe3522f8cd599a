"""``gqa-retrofit convert SRC OUT --kv-heads K``: rewrite a checkpoint to fewer heads, streamed."""

from __future__ import annotations

import argparse
from typing import Any

from ..pipeline.options import ConvertOptions
from ._util import print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="rewrite a checkpoint to fewer KV (and query) heads, shard by shard",
        description="Rewrite checkpoint SRC (local directory or Hub id) with fewer KV heads (and "
        "optionally fewer query heads) into OUT, streaming shard by shard. OUT is written to a "
        "temporary sibling and renamed when complete; SRC is never modified.",
    )
    ConvertOptions.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = ConvertOptions.from_args(args).run()
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
