"""Convert-then-train in Python: uptrain a retrofitted checkpoint with distillation.

    python examples/train_distill.py CONVERTED_DIR ORIGINAL_DIR OUT_DIR [--steps 100]

CONVERTED_DIR is a checkpoint written by ``gqa-retrofit convert`` (fewer KV heads), ORIGINAL_DIR
the model it came from (the teacher: same tokenizer). Trains the attention projections on the
embedded Jane Austen training novels with 0.5 * CE + 0.5 * KL and prints the report. The same
script runs under ``accelerate launch --config_file examples/accelerate/ddp_cpu.yaml``.
"""

from __future__ import annotations

import argparse
import json

from gqa_retrofit import TrainOptions, train
from gqa_retrofit.assets import default_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("converted")
    parser.add_argument("original")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    corpus = default_corpus()
    options = TrainOptions(
        model=args.converted,
        out=args.out,
        teacher=args.original,
        train_data=[str(p) for p in corpus.train],
        eval_data=str(corpus.validation),
        train_steps=args.steps,
        seq_len=256,
        batch_size=4,
        lr=1e-4,
        schedule="wsd",
        warmup=10,
        trainable="attention",
        distill_weight=0.5,
        save_every=25,
        eval_every=25,
        eval_windows=8,
    )
    report = train(options)
    print(json.dumps(report.record(), indent=2))


if __name__ == "__main__":
    main()
