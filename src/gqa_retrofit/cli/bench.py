"""``gqa-retrofit bench``: decode speed and measured KV-cache bytes of models side by side."""

from __future__ import annotations

import argparse
from typing import Any

from .._options import device_value, dtype_value
from ..devices import DTYPE_NAMES
from ._util import context_list, positive_int, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure prefill time, decode tokens/s and KV-cache bytes of models side by side",
        description="Greedy-decode random prompts of each context length with every model "
        "(runs interleaved model by model, repeated), and report prefill seconds, decode "
        "tokens/s (median and spread) and the KV-cache bytes measured from the cache tensors "
        "next to the estimator's prediction.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model directory or Hub id")
    parser.add_argument(
        "--context",
        type=context_list,
        default=[2048, 8192],
        help="comma-separated prompt lengths, e.g. 2048,8k (default: 2048,8192)",
    )
    parser.add_argument("--new-tokens", type=positive_int, default=64, help="decode steps (64)")
    parser.add_argument("--batch", type=positive_int, default=1, help="sequences per run (1)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="runs per model (5)")
    parser.add_argument(
        "--dtype",
        type=dtype_value,
        choices=DTYPE_NAMES,
        default="fp32",
        help="weights dtype, bf16 and bfloat16 alike (default: fp32)",
    )
    parser.add_argument(
        "--device",
        type=device_value,
        default="auto",
        metavar="DEVICE",
        help="where the models run: auto (the accelerator when present), cpu, cuda, cuda:N, mps "
        "(default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code (off)"
    )
    parser.add_argument("--json", action="store_true", help='print {"results": [...]}')
    parser.set_defaults(func=run)


def check_bench(
    models: list[str], contexts: list[int], *, new_tokens: int, batch: int, dtype: str
) -> None:
    """Refuse benchmarks that cannot run here, before loading anything.

    Raises:
        ConfigError: a bad model config (read as ``estimate`` does), a context beyond a learned
            position table, or a context whose weights, KV cache and prefill activations need
            more memory than this machine has.
        ModelSourceError: a model cannot be resolved.
    """
    import os

    from ..cost import estimate
    from ..devices import DTYPE_BYTES
    from ..errors import ConfigError
    from ..evaluation.options import check_positions, source_shape

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for model in models:
        shape = source_shape(model)
        for context in contexts:
            if shape.positions:  # a learned position table has no row beyond its size
                check_positions(model, shape, context + new_tokens, flag="--context + --new-tokens")
            tokens = context + new_tokens
            need = estimate(model, contexts=(tokens,), dtype=dtype, batch=batch).to_dict()
            memory = int(need["per_context"][0]["memory_bytes"])
            # the prefill's hidden states and logits (fp32) of the whole prompt
            memory += batch * context * (8 * shape.hidden + shape.vocab) * DTYPE_BYTES["fp32"]
            if memory > physical:
                raise ConfigError(
                    f"--context {context} needs about {memory / 2**30:,.1f} GiB for {model!r} "
                    f"(weights, KV cache, prefill activations), more than the "
                    f"{physical / 2**30:,.1f} GiB of memory here: choose a shorter context"
                )


def run(args: argparse.Namespace) -> int:
    from ..evaluation.bench import benchmark_decode, results_to_markdown

    check_bench(
        args.models, args.context, new_tokens=args.new_tokens, batch=args.batch, dtype=args.dtype
    )

    results = benchmark_decode(
        args.models,
        contexts=args.context,
        new_tokens=args.new_tokens,
        batch=args.batch,
        repeats=args.repeats,
        dtype=args.dtype,
        device=args.device,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
    )
    if args.json:
        print_json({"results": results})
    else:
        print(results_to_markdown(results))
    return 0
