"""Options of a training run: one dataclass serves the Python API, the CLI and YAML/JSON configs.

Every field is declared once with :func:`gqa_retrofit._options.option` (help text, choices,
bounds); :mod:`gqa_retrofit.cli.train` builds its flags from these fields, and ``--config`` /
:meth:`TrainOptions.from_dict` read the same names (``train_steps`` or ``train-steps``). The
options shared with other commands come from :mod:`gqa_retrofit._vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .._options import Options, dtype_value, option, read_config_file, same_as
from .._vocabulary import SharedOptions
from ..data.options import DataOptions
from ..devices import DTYPE_CHOICES, HALF_DTYPES
from ..errors import GQARetrofitError, TrainingError

SCHEDULES = ("wsd", "cosine")
TRAINABLE = ("attention", "all", "lora")
MIXED_PRECISION = ("no", *HALF_DTYPES)
TRACKERS = ("tensorboard", "trackio")
_POSITIVE = "must be a positive integer"


@dataclass
class TrainOptions(Options):
    """Everything that defines a ``gqa-retrofit train`` run.

    Raises:
        TrainingError: from :meth:`validate` when a value is out of range (the message names the
            option, the bad value and what is valid).
    """

    label: ClassVar[str] = "training"
    error: ClassVar[type[GQARetrofitError]] = TrainingError

    model: str = option("", "student checkpoint: local directory or Hub id", positional=True)
    out: str = option(
        "", "output directory (checkpoints, metrics.jsonl, final model)", positional=True
    )
    train_data: list[str] = option(
        help="training data: text files or globs, .jsonl/.json/.parquet files with a "
        "text column, or a Hub dataset id (streamed); repeatable",
        default_factory=list,
        aliases=("data",),
        metavar="DATA",
    )
    data_options: DataOptions = same_as(SharedOptions, "data_options")
    teacher: str | None = option(
        None,
        "teacher checkpoint for KL distillation (usually the "
        "unconverted source model); must share the student's tokenizer",
    )
    revision: str | None = same_as(
        SharedOptions, "revision", help="Hub revision (branch, tag or commit) of MODEL"
    )
    teacher_revision: str | None = same_as(
        SharedOptions, "revision", help="Hub revision (branch, tag or commit) of --teacher"
    )
    train_steps: int | None = option(
        None,
        "optimizer steps to run (default: one pass over the data)",
        aliases=("max-steps",),
        minimum=1,
        must=_POSITIVE + " (or omitted for one pass over the data)",
        metavar="N",
    )
    train_tokens: int | None = option(
        None,
        "stop after this many training tokens (global)",
        aliases=("max-tokens",),
        minimum=1,
        must=_POSITIVE + " (or omitted for one pass over the data)",
        metavar="N",
    )
    seq_len: int = option(512, "tokens per packed block", minimum=1, must=_POSITIVE)
    batch_size: int = option(4, "blocks per micro-batch per process", minimum=1, must=_POSITIVE)
    grad_accum: int = option(
        1, "micro-batches accumulated per optimizer step", minimum=1, must=_POSITIVE
    )
    lr: float = option(
        1e-4,
        "peak learning rate (AdamW); 1e-4 recovered a converted SmolLM2 best among 5e-5..1e-3 "
        "(benchmarks/results/train_recovery_sweep.json)",
        minimum=0.0,
        must="must be a positive number",
    )
    weight_decay: float = option(0.0, "AdamW weight decay", minimum=0.0)
    schedule: str = option(
        "wsd", "learning-rate schedule: warmup-stable-decay or cosine", choices=SCHEDULES
    )
    warmup: int = option(10, "linear warmup steps", minimum=0)
    decay_fraction: float = option(
        0.2, "WSD: fraction of the steps spent in the final linear decay", minimum=0.0, maximum=1.0
    )
    min_lr_ratio: float = option(
        0.1, "final learning rate as a fraction of --lr", minimum=0.0, maximum=1.0
    )
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 disables clipping)", minimum=0.0)
    trainable: str = option(
        "attention",
        "what trains: the attention projections (what conversion "
        "changes), all parameters, or LoRA adapters merged on save",
        choices=TRAINABLE,
    )
    lora_r: int = option(16, "LoRA rank (--trainable lora)", minimum=1, must=_POSITIVE)
    lora_alpha: int = option(32, "LoRA alpha (--trainable lora)", minimum=1, must=_POSITIVE)
    distill_weight: float = option(
        0.5,
        "weight A of the KL term: loss = (1-A)*CE + A*T^2*KL (used only with --teacher)",
        minimum=0.0,
        maximum=1.0,
    )
    temperature: float = option(1.0, "distillation temperature T", minimum=0.0, must="must be > 0")
    eval_data: str | None = same_as(
        SharedOptions, "eval_data", help="held-out text for evaluation loss/perplexity", aliases=()
    )
    eval_every: int = option(0, "evaluate every N steps (0: only at the end)", minimum=0)
    eval_windows: int = same_as(
        SharedOptions,
        "eval_windows",
        help="at most this many windows of --seq-len tokens of --eval-data per evaluation",
        aliases=("eval-blocks",),
        must=_POSITIVE,
    )
    save_every: int = option(0, "checkpoint every N steps (0: only at the end)", minimum=0)
    keep_checkpoints: int = option(
        2, "how many step checkpoints to keep in OUT/checkpoints", minimum=1, must=_POSITIVE
    )
    resume: str | None = option(
        None,
        "continue a run: 'latest' (the newest checkpoint in OUT) or a checkpoint directory",
        nargs="?",
        const="latest",
    )
    overwrite: bool = option(False, "start over in an OUT that holds an earlier training run")
    seed: int = option(0, "seed for data order and initialisation of new parameters", minimum=0)
    mixed_precision: str = option(
        "no", "autocast precision (where the device supports it)", choices=MIXED_PRECISION
    )
    gradient_checkpointing: bool = option(False, "recompute activations in backward (less memory)")
    device: str = same_as(
        SharedOptions,
        "device",
        help="where to train: auto (the accelerator when present), cpu, cuda, cuda:N, mps; under "
        "accelerate launch each process takes its local device",
    )
    dtype: str = option(
        "fp32",
        "dtype of the student's weights, which the optimizer updates (fp32; bf16/fp16 train "
        "in pure low precision, auto keeps the checkpoint's); --mixed-precision sets compute",
        choices=DTYPE_CHOICES,
        parse=dtype_value,
    )
    teacher_dtype: str = option(
        "auto",
        "dtype of the frozen teacher: auto (the teacher checkpoint's own), bf16, fp16 or fp32",
        choices=DTYPE_CHOICES,
        parse=dtype_value,
    )
    report_to: list[str] = option(
        help="also log to these trackers when installed: tensorboard, trackio",
        default_factory=list,
        nargs="*",
        choices=TRACKERS,
    )
    trust_remote_code: bool = same_as(SharedOptions, "trust_remote_code")
    dry_run: bool = option(
        False,
        "print the memory plan per device (from the configs alone: MODEL and --teacher may hold "
        "just config.json) and what makes it fit, then exit without training",
        recorded=False,
    )
    plan_devices: int | None = option(
        None,
        "--dry-run: number of devices to plan for (default: this machine's)",
        minimum=1,
        must=_POSITIVE,
    )
    device_memory: str | None = option(
        None, "--dry-run: memory per device, e.g. 80GiB (default: this machine's)"
    )

    def validate(self) -> TrainOptions:
        """Check every value; return self.

        Raises:
            TrainingError: the first bad value, named with what would be valid.
        """
        if not self.model:
            raise TrainingError("no MODEL given: pass a checkpoint directory or Hub id")
        if not self.out and not self.dry_run:
            raise TrainingError("no OUT given: pass the output directory")
        if not self.train_data and not self.dry_run:
            raise TrainingError("no training data given: pass --train-data PATH_OR_DATASET")
        self.check_fields()
        for name, wording in (("lr", "must be a positive number"), ("temperature", "must be > 0")):
            if getattr(self, name) <= 0:
                raise TrainingError(f"--{name} {getattr(self, name)!r} is invalid: {wording}")
        return self


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a mapping of option values.

    Raises:
        TrainingError: the file is missing, unreadable, or not a mapping.
    """
    return read_config_file(path, error=TrainingError)
