"""``gqa-retrofit train``: continued training (uptraining) with optional distillation.

Flags are generated from :class:`gqa_retrofit.training.options.TrainOptions`; ``--config``
reads the same options from YAML/JSON, and flags given on the command line win over the file.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..training.options import TrainOptions, field_default, load_config, option_fields

EXAMPLES = """examples:
  gqa-retrofit train converted/ trained/ --data 'texts/*.txt' --teacher original/ --max-steps 100
  accelerate launch --cpu --num_processes 2 -m gqa_retrofit.cli.main train converted/ trained/ \\
      --data corpus.jsonl --batch-size 2
  gqa-retrofit train converted/ trained/ --config train.yaml --lr 1e-4
  gqa-retrofit train converted/ trained/ --data corpus.txt --resume   # continue after a stop
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="continue training a (converted) model, with distillation from the original",
        description="Continue training MODEL on --data and write a plain HF checkpoint to OUT. "
        "Runs on one CPU or under `accelerate launch` (DDP, FSDP, DeepSpeed).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    for f in option_fields():
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        default = field_default(f)
        if meta.pop("positional", False):
            parser.add_argument(f.name, metavar=f.name.upper(), nargs="?", help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        if default is False:
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        kwargs: dict[str, Any] = {"help": f"{help_text} (default: {default})"}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "type" in meta:
            kwargs["type"] = meta["type"]
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
            if meta["nargs"] in ("+", "*"):
                kwargs["action"] = "extend"
        if "const" in meta:
            kwargs["const"] = meta["const"]
        parser.add_argument(flag, **kwargs)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON file of options (flags given here override it)",
    )
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """Merge defaults, the ``--config`` file and explicit flags (in that order of precedence)."""
    values: dict[str, Any] = {}
    config = getattr(args, "config", None)
    if config:
        values.update({str(k).replace("-", "_"): v for k, v in load_config(config).items()})
    names = {f.name for f in option_fields()}
    for name, value in vars(args).items():
        if name in names and value is not None:
            values[name] = value
    return TrainOptions.from_dict(values)


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
