"""Short sweep that chose the training settings of ``train_recovery.py``.

Each run trains for ``--steps`` (30) optimizer steps of 4 x 256 tokens of the training novels,
WSD schedule, seed 0, from either the default data-aware conversion of SmolLM2 (3 -> 1 KV heads,
``best``; ``--calibration-tokens``, 8,192 when the sweep ran) or the unconverted model
(``original``, cross-entropy only), then measures perplexity on *Persuasion* (first 16 windows
of 512 tokens). Quality does not depend on the machine load (the wall times do).

    python benchmarks/train_recovery_sweep.py --run best:1e-4:attention:0.5 [--run ...]

``--run START:LR:TRAINABLE:DISTILL_WEIGHT`` (distill weight 0 = no teacher). Results are merged
into ``benchmarks/results/train_recovery_sweep.json`` (one entry per run, keyed by its spec).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_recovery import WORK, best_method, convert, corpus, load, model_dir, perplexity, recipe

RESULTS = Path(__file__).resolve().parent / "results" / "train_recovery_sweep.json"


def run(spec: str, steps: int, calibration_tokens: int) -> dict[str, Any]:
    from gqa_retrofit.training import train
    from gqa_retrofit.training.modeling import load_tokenizer

    start_name, lr, trainable, weight = spec.split(":")
    src = model_dir()
    if start_name == "original":
        start = src
    elif start_name == "best":
        start = convert(
            src,
            WORK / f"smollm2-kv1-best-{calibration_tokens}",
            best_method(),
            calibration_tokens=calibration_tokens,
        )
    else:
        raise SystemExit(f"unknown start {start_name!r}: original or best")
    test_file = corpus()[1]
    out = WORK / f"sweep-{spec.replace(':', '_')}"
    t0 = time.perf_counter()
    train(
        recipe(
            start,
            out,
            str(src) if float(weight) > 0 else None,
            steps=steps,
            lr=float(lr),
            trainable=trainable,
            distill_weight=float(weight),
            overwrite=True,
        )
    )
    seconds = time.perf_counter() - t0
    model = load(out)
    return {
        "start": start_name,
        "lr": float(lr),
        "trainable": trainable,
        "distill_weight": float(weight),
        "steps": steps,
        "conversion": f"{best_method()}, {calibration_tokens} calibration tokens"
        if start_name == "best"
        else None,
        "perplexity": perplexity(model, load_tokenizer(src), test_file),
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="START:LR:TRAINABLE:A")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--calibration-tokens", type=int, default=8192, help="of the best conversion (8192)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gqa_retrofit._progress import set_quiet

    set_quiet(True)
    for spec in args.run:
        entry = run(spec, args.steps, args.calibration_tokens)
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
        results["runs"][spec] = entry
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
