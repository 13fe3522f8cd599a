"""Convert a Llama-shaped checkpoint to fewer KV heads, verify it, and compare its cost.

Command::

    python examples/convert_llama.py SRC OUT --kv-heads 1 [--method mean]
        [--calibration TEXT [TEXT ...]]

``SRC`` is a local checkpoint directory or a Hub id (only the needed files are downloaded).
The converted checkpoint in ``OUT`` is a plain transformers checkpoint plus a
``gqa_retrofit.json`` manifest; this script checks it with ``verify_checkpoint`` and prints the
KV-cache bytes per token before and after. The same as ``gqa-retrofit convert`` followed by
``gqa-retrofit verify`` and ``gqa-retrofit estimate``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="convert a Llama-shaped checkpoint")
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--kv-heads", type=int, required=True)
    parser.add_argument("--method", default=None)
    parser.add_argument("--calibration", nargs="+", default=None)
    args = parser.parse_args(argv)

    from gqa_retrofit.conversion.convert import convert_checkpoint
    from gqa_retrofit.conversion.verify import verify_checkpoint
    from gqa_retrofit.cost import estimate

    report = convert_checkpoint(
        args.src,
        args.out,
        kv_heads=args.kv_heads,
        method=args.method,
        calibration=args.calibration,
    )
    verify_checkpoint(args.out)
    before = estimate(args.src).kv_cache_bytes_per_token
    after = estimate(args.out).kv_cache_bytes_per_token
    print(
        f"converted {args.src} -> {args.out} with {report.method}: "
        f"KV heads {report.kv_heads_before} -> {report.kv_heads_after}, "
        f"KV cache {before:,} -> {after:,} bytes/token (bf16), verified"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
