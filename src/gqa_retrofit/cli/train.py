"""``gqa-retrofit train``: continued training (uptraining) with optional distillation.

Flags are generated from :class:`gqa_retrofit.training.options.TrainOptions`; ``--config``
reads the same options from YAML/JSON, and flags given on the command line win over the file.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..training.options import TrainOptions

EXAMPLES = """examples:
  gqa-retrofit train converted/ trained/ --train-data 'texts/*.txt' --teacher original/ \\
      --train-steps 100
  # data parallel on 2 CPU processes (torchrun launcher; see the file's comments):
  accelerate launch --config_file examples/accelerate/ddp_cpu.yaml \\
      -m gqa_retrofit.cli.main train converted/ trained/ --train-data corpus.jsonl --batch-size 2
  gqa-retrofit train converted/ trained/ --config train.yaml --lr 1e-4
  gqa-retrofit train converted/ trained/ --train-data corpus.txt --resume   # continue after a stop
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="continue training a (converted) model, with distillation from the original",
        description="Continue training MODEL on --train-data and write a plain HF checkpoint to "
        "OUT. Runs on one CPU or under `accelerate launch` (DDP, FSDP, DeepSpeed; the configs "
        "in examples/accelerate/ start N processes).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    TrainOptions.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """Merge defaults, the ``--config`` file and explicit flags (in that order of precedence)."""
    return TrainOptions.from_args(args)


def run(args: argparse.Namespace) -> int:
    from ..training import train
    from ._util import print_json

    options = options_from_args(args)
    if options.dry_run:
        from ..training.memory_plan import plan_training

        plan = plan_training(options.validate())
        if getattr(args, "json", False):
            print_json(plan.to_dict())
        else:
            print(plan.render())
        return 0
    report = train(options)
    if getattr(args, "json", False):
        from accelerate import PartialState

        if PartialState().is_main_process:
            print_json(report.to_dict())
    return 0
