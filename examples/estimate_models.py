"""Estimate several models' serving costs (config only, no weights) and plot them.

Command::

    python examples/estimate_models.py meta-llama/Llama-3.1-8B Qwen/Qwen2.5-7B \
        mistralai/Mistral-7B-v0.1 --context 4096,32768,131072 --plot costs.png

Each MODEL is a Hub id (only ``config.json`` is downloaded), a local directory or a
``config.json`` path. Prints one line per model and context (KV cache, decode FLOPs) and writes
a two-panel plot (KV cache and decode FLOPs vs context). ``--what-if 32:1`` adds a retrofit
geometry (query heads : KV heads) of every model. The same as
``gqa-retrofit estimate MODEL ... --plot FILE``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="estimate and plot several models")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--context", default="4096,32768,131072")
    parser.add_argument("--what-if", default=None, help="HEADS:KV_HEADS retrofit geometry")
    parser.add_argument("--plot", default="costs.png")
    args = parser.parse_args(argv)

    from gqa_retrofit.cost import estimate, plot_reports

    contexts = [int(c) for c in args.context.split(",")]
    reports = []
    for model in args.models:
        what_if = []
        if args.what_if:
            heads, kv_heads = (int(x) for x in args.what_if.split(":"))
            what_if.append((heads, kv_heads))
        report = estimate(model, contexts=contexts, what_if=what_if)
        reports.append(report)
        for variant in (report, *report.what_if):
            for cost in variant.per_context:
                print(
                    f"{variant.label}: context {cost.context:>7,}: KV cache "
                    f"{cost.kv_cache_bytes / 2**30:8.3f} GiB, decode "
                    f"{cost.decode_flops / 1e9:8.2f} GFLOPs/token"
                )
    path = plot_reports(reports, args.plot)
    print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
