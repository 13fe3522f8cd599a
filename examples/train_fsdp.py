"""Uptrain a converted checkpoint with distillation from its source, on accelerate.

Command (8 GPUs, FSDP, the config shipped in ``examples/accelerate/``)::

    accelerate launch --config_file examples/accelerate/fsdp.yaml examples/train_fsdp.py \
        CONVERTED OUT --teacher SRC --train-data "corpus/*.txt" --train-steps 900

On CPU (two processes, DDP over gloo, what the tests exercise)::

    accelerate launch --config_file examples/accelerate/ddp_cpu.yaml examples/train_fsdp.py \
        CONVERTED OUT --teacher SRC --train-data corpus.txt --train-steps 100

Plain ``python examples/train_fsdp.py ...`` runs one process. The script only builds
``TrainOptions`` and calls ``gqa_retrofit.training.train``, exactly what
``gqa-retrofit train`` does; the final model in OUT is a plain transformers checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="distillation uptraining on accelerate")
    parser.add_argument("model", help="converted checkpoint (the student)")
    parser.add_argument("out")
    parser.add_argument("--teacher", default=None, help="source checkpoint (the teacher)")
    parser.add_argument("--train-data", nargs="+", required=True)
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--trainable", default="all", choices=["attention", "all", "lora"])
    args = parser.parse_args(argv)

    from gqa_retrofit.training import TrainOptions, train

    options = TrainOptions(
        model=args.model,
        out=args.out,
        train_data=args.train_data,
        teacher=args.teacher,
        train_steps=args.train_steps,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        lr=args.lr,
        trainable=args.trainable,
        save_every=max(1, args.train_steps // 4),
    ).validate()
    report = train(options)
    if report.first_loss is not None and report.final_loss is not None:
        print(
            f"trained {report.steps} steps ({report.tokens:,} tokens): loss "
            f"{report.first_loss:.3f} -> {report.final_loss:.3f}; model in {report.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
