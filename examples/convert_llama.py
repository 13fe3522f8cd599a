"""Convert a Llama-shaped checkpoint to fewer KV heads, verify it, and compare its cost.

Command::

    python examples/convert_llama.py SRC OUT --kv-heads 1 [--method pca-refit]
        [--calibration TEXT [TEXT ...]]

``SRC`` is a local checkpoint directory or a Hub id (only the needed files are downloaded).
The flags are those of ``gqa-retrofit convert`` (the script builds its parser from the same
:class:`~gqa_retrofit.pipeline.options.ConvertOptions`). The converted checkpoint in ``OUT`` is
a plain transformers checkpoint plus a ``gqa_retrofit.json`` manifest; the script checks it with
``verify_checkpoint``, prints every check and the KV-cache bytes per token before and after, and
exits 1 when a check fails. The same as ``gqa-retrofit convert`` followed by
``gqa-retrofit verify`` and ``gqa-retrofit estimate``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from gqa_retrofit.pipeline.options import ConvertOptions

    parser = argparse.ArgumentParser(description="convert a Llama-shaped checkpoint")
    ConvertOptions.add_arguments(parser)
    options = ConvertOptions.from_args(parser.parse_args(argv))

    from gqa_retrofit.conversion.verify import verify_checkpoint
    from gqa_retrofit.cost import estimate

    report = options.run()
    verdict = verify_checkpoint(options.out)
    for check in verdict.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<9} {check.detail}")
    before = estimate(options.src).kv_cache_bytes_per_token
    after = estimate(options.out).kv_cache_bytes_per_token
    status = "verified" if verdict.ok else "FAILED verification: " + "; ".join(verdict.problems)
    print(
        f"converted {options.src} -> {options.out} with {report.method}: "
        f"KV heads {report.kv_heads_before} -> {report.kv_heads_after}, "
        f"KV cache {before:,} -> {after:,} bytes/token (bf16), {status}"
    )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
