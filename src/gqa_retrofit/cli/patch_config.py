"""``gqa-retrofit patch-config``: write a decoupled-head GQA config (+ code for custom types)."""

from __future__ import annotations

import argparse
from typing import Any

from ._util import positive_int, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "patch-config",
        help="write a decoupled-head GQA variant of a model config",
        description="Write the config of a decoupled-head GQA variant of SRC_CONFIG (heads, KV "
        "heads and head size chosen freely) to OUT_DIR, to train it from scratch. Native "
        "families stay plain transformers configs; gpt2/gpt_neox/opt/falcon become "
        "<family>_gqa types and OUT_DIR also gets their code (load with trust_remote_code=True "
        "or after importing gqa_retrofit.patching).",
    )
    parser.add_argument(
        "source", metavar="SRC_CONFIG", help="model directory, config.json path or Hub id"
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to create")
    parser.add_argument("--heads", type=positive_int, help="query heads (default: keep)")
    parser.add_argument("--kv-heads", type=positive_int, help="KV heads (default: keep)")
    parser.add_argument("--head-dim", type=positive_int, help="head size (default: keep)")
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="take depth, width, FFN size, heads, KV heads and head size from the output of "
        "`gqa-retrofit recommend --json` (the rest of the config from SRC_CONFIG)",
    )
    parser.add_argument(
        "--rank", type=positive_int, default=1, help="recommendation of --from-json (1 = best)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..patching.save import write_patched_config

    source: Any = args.source
    if args.from_json:
        from ..errors import ConfigError
        from ..patching.save import load_config
        from ..recipe.geometry import from_scratch_config, load_recommendation

        if any(v is not None for v in (args.heads, args.kv_heads, args.head_dim)):
            raise ConfigError(
                "--from-json sets heads, kv_heads and head_dim: drop --heads/--kv-heads/--head-dim"
            )
        recommendation = load_recommendation(args.from_json, args.rank)
        source = from_scratch_config(load_config(args.source), recommendation)
    result = write_patched_config(
        source,
        args.out_dir,
        heads=args.heads,
        kv_heads=args.kv_heads,
        head_dim=args.head_dim,
        overwrite=args.overwrite,
    )
    if args.json:
        print_json(result)
    else:
        print(
            f"wrote {result['out']}: {result['model_type']} with {result['heads']} heads, "
            f"{result['kv_heads']} KV heads, head_dim {result['head_dim']} "
            f"({', '.join(result['files'])})"
        )
    return 0
