"""Decode speed and KV-cache bytes: SmolLM2-135M (3 KV heads) vs its 1-KV-head retrofit.

Command (one run, writes ``benchmarks/results/decode_speed.json``)::

    PYTHONPATH=src python benchmarks/decode_speed.py

Options: ``--contexts 2048,8192 --repeats 5 --new-tokens 64 --prefill-repeats 1 --threads N
--dtype fp32 --out FILE``. The retrofit is the mean-pooled conversion (3 -> 1 KV heads; the
pooling method does not change speed, only the shapes do). Both models decode the same random
prompt of each context; runs are interleaved model by model, the order alternating per repeat.
The measured KV-cache bytes come from the cache tensors; the ratio of decode tokens/s is the
ratio of the medians (and, for the spread, the median of the per-repeat paired ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "decode_speed.json"


def host() -> dict[str, Any]:
    """What every benchmark's numbers depend on: CPU model, cores, load, Python (no torch; also
    ``serve_vllm.py``'s record)."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def machine() -> dict[str, Any]:
    """What the numbers depend on: :func:`host`, torch threads and versions."""
    import torch
    import transformers

    return {
        **host(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="2048,8192")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prefill-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from gqa_retrofit.assets import default_model_dir
    from gqa_retrofit.conversion.convert import convert_checkpoint
    from gqa_retrofit.evaluation.bench import benchmark_decode

    if args.threads:
        torch.set_num_threads(args.threads)
    contexts = [int(c) for c in args.contexts.split(",")]
    source = default_model_dir()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    before = machine()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="decode-speed-") as tmp:
        retrofit = Path(tmp) / "smollm2-kv1"
        convert_checkpoint(str(source), retrofit, kv_heads=1, method="mean")
        rows = benchmark_decode(
            [str(source), str(retrofit)],
            contexts=contexts,
            new_tokens=args.new_tokens,
            repeats=args.repeats,
            prefill_repeats=args.prefill_repeats,
            dtype=args.dtype,
            names=["original", "retrofit-kv1"],
        )
    wall = time.perf_counter() - t0

    comparisons = []
    for context in contexts:
        original, retro = (r for r in rows if r["context"] == context)
        paired = [
            b / a
            for a, b in zip(
                original["decode_tokens_per_second_runs"], retro["decode_tokens_per_second_runs"]
            )
        ]
        comparisons.append(
            {
                "context": context,
                "kv_cache_bytes": {
                    "original": original["kv_cache_bytes"],
                    "retrofit": retro["kv_cache_bytes"],
                },
                "kv_cache_ratio": retro["kv_cache_bytes"] / original["kv_cache_bytes"],
                "kv_exactly_one_third": 3 * retro["kv_cache_bytes"] == original["kv_cache_bytes"],
                "measured_equals_predicted": all(
                    r["kv_cache_bytes"] == r["predicted_kv_cache_bytes"] for r in (original, retro)
                ),
                "decode_tokens_per_second": {
                    "original": original["decode_tokens_per_second"],
                    "retrofit": retro["decode_tokens_per_second"],
                },
                "speedup_ratio_of_medians": retro["decode_tokens_per_second"]
                / original["decode_tokens_per_second"],
                "speedup_paired_median": statistics.median(paired),
                "speedup_paired_min": min(paired),
                "speedup_paired_max": max(paired),
            }
        )
    result = {
        "benchmark": "decode_speed",
        "command": "PYTHONPATH=src python benchmarks/decode_speed.py "
        + " ".join(argv or sys.argv[1:]),
        "started": started,
        "wall_seconds": round(wall, 1),
        "model": "SmolLM2-135M-Instruct (embedded default), 9 query / 3 KV heads, head_dim 64",
        "retrofit": "mean pooling to 1 KV head (gqa_retrofit.conversion.convert_checkpoint)",
        "settings": {
            "contexts": contexts,
            "new_tokens": args.new_tokens,
            "repeats": args.repeats,
            "prefill_repeats": args.prefill_repeats,
            "dtype": args.dtype,
            "batch": 1,
            "attention": "sdpa",
        },
        "machine_before": before,
        "machine_after": machine(),
        "comparisons": comparisons,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for c in comparisons:
        print(
            f"context {c['context']:>6}: KV {c['kv_cache_bytes']['original']:,} -> "
            f"{c['kv_cache_bytes']['retrofit']:,} B (1/3 exact: {c['kv_exactly_one_third']}), "
            f"decode {c['decode_tokens_per_second']['original']:.2f} -> "
            f"{c['decode_tokens_per_second']['retrofit']:.2f} tok/s "
            f"({c['speedup_ratio_of_medians']:.2f}x)"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
