"""Options of a training run: one dataclass serves the Python API, the CLI and YAML/JSON configs.

Every field carries its help text (and, where useful, its choices) in ``metadata``, the way peft
and ``HfArgumentParser`` do; :mod:`gqa_retrofit.cli.train` builds its flags from these fields, and
:func:`load_config` reads the same names (``max_steps`` or ``max-steps``) from a file.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._options import options_from_mapping, read_config_file
from ..errors import ConfigError, TrainingError

SCHEDULES = ("wsd", "cosine")
TRAINABLE = ("attention", "all", "lora")
MIXED_PRECISION = ("no", "bf16", "fp16")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainOptions:
    """Everything that defines a ``gqa-retrofit train`` run.

    Raises:
        TrainingError: from :meth:`validate` when a value is out of range (the message names the
            option, the bad value and what is valid).
    """

    model: str = _opt("", "student checkpoint: local directory or Hub id", positional=True)
    out: str = _opt(
        "", "output directory (checkpoints, metrics.jsonl, final model)", positional=True
    )
    data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "training data: text files or globs, .jsonl/.json/.parquet files with a "
            "text column, or a Hub dataset id (streamed); repeatable",
            "nargs": "+",
        },
    )
    text_column: str = _opt("text", "column holding the text in jsonl/parquet/Hub datasets")
    teacher: str | None = _opt(
        None,
        "teacher checkpoint for KL distillation (usually the "
        "unconverted source model); must share the student's tokenizer",
    )
    max_steps: int | None = _opt(
        None, "optimizer steps to run (default: one pass over the data)", type=int
    )
    max_tokens: int | None = _opt(None, "stop after this many training tokens (global)", type=int)
    seq_len: int = _opt(512, "tokens per packed block", type=int)
    batch_size: int = _opt(4, "blocks per micro-batch per process", type=int)
    grad_accum: int = _opt(1, "micro-batches accumulated per optimizer step", type=int)
    lr: float = _opt(
        1e-4,
        "peak learning rate (AdamW); 1e-4 recovered a converted SmolLM2 best among 5e-5..1e-3 "
        "(benchmarks/results/train_recovery_sweep.json)",
        type=float,
    )
    weight_decay: float = _opt(0.0, "AdamW weight decay", type=float)
    schedule: str = _opt(
        "wsd", "learning-rate schedule: warmup-stable-decay or cosine", choices=SCHEDULES
    )
    warmup: int = _opt(10, "linear warmup steps", type=int)
    decay_fraction: float = _opt(
        0.2, "WSD: fraction of the steps spent in the final linear decay", type=float
    )
    min_lr_ratio: float = _opt(0.1, "final learning rate as a fraction of --lr", type=float)
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0 disables clipping)", type=float)
    trainable: str = _opt(
        "attention",
        "what trains: the attention projections (what conversion "
        "changes), all parameters, or LoRA adapters merged on save",
        choices=TRAINABLE,
    )
    lora_r: int = _opt(16, "LoRA rank (--trainable lora)", type=int)
    lora_alpha: int = _opt(32, "LoRA alpha (--trainable lora)", type=int)
    distill_weight: float = _opt(
        0.5,
        "weight A of the KL term: loss = (1-A)*CE + A*T^2*KL (used only with --teacher)",
        type=float,
    )
    temperature: float = _opt(1.0, "distillation temperature T", type=float)
    eval_data: str | None = _opt(None, "held-out text for evaluation loss/perplexity")
    eval_every: int = _opt(0, "evaluate every N steps (0: only at the end)", type=int)
    eval_blocks: int = _opt(16, "at most this many blocks of --eval-data per evaluation", type=int)
    save_every: int = _opt(0, "checkpoint every N steps (0: only at the end)", type=int)
    keep_checkpoints: int = _opt(
        2, "how many step checkpoints to keep in OUT/checkpoints", type=int
    )
    resume: str | None = _opt(
        None,
        "continue a run: 'latest' (the newest checkpoint in OUT) or a checkpoint directory",
        nargs="?",
        const="latest",
    )
    overwrite: bool = _opt(False, "start over in an OUT that holds an earlier training run")
    seed: int = _opt(0, "seed for data order and initialisation of new parameters", type=int)
    mixed_precision: str = _opt(
        "no", "autocast precision (where the device supports it)", choices=MIXED_PRECISION
    )
    gradient_checkpointing: bool = _opt(False, "recompute activations in backward (less memory)")
    device: str = _opt(
        "auto",
        "where to train: auto (the accelerator when present), cpu, cuda, cuda:N, mps; under "
        "accelerate launch each process takes its local device",
    )
    dtype: str = _opt(
        "fp32",
        "dtype of the student's weights, which the optimizer updates (fp32; bf16/fp16 train "
        "in pure low precision, auto keeps the checkpoint's); --mixed-precision sets compute",
    )
    teacher_dtype: str = _opt(
        "auto",
        "dtype of the frozen teacher: auto (the teacher checkpoint's own), bf16, fp16 or fp32",
    )
    report_to: list[str] = field(
        default_factory=list,
        metadata={
            "help": "also log to these trackers when installed: tensorboard, trackio",
            "nargs": "*",
        },
    )
    trust_remote_code: bool = _opt(False, "allow custom modeling code from the checkpoint")
    dry_run: bool = _opt(
        False,
        "print the memory plan per device (from the configs alone: MODEL and --teacher may hold "
        "just config.json) and what makes it fit, then exit without training",
    )
    plan_devices: int | None = _opt(
        None, "--dry-run: number of devices to plan for (default: this machine's)", type=int
    )
    device_memory: str | None = _opt(
        None, "--dry-run: memory per device, e.g. 80GiB (default: this machine's)"
    )

    # ---------------------------------------------------------------- helpers
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        """Build options from a mapping whose keys use ``_`` or ``-``.

        Raises:
            TrainingError: unknown keys (the message lists valid ones).
        """
        return options_from_mapping(
            cls, values, label="training", error=TrainingError, list_fields=("data", "report_to")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> TrainOptions:
        """Check every value; return self.

        Raises:
            TrainingError: the first bad value, named with what would be valid.
        """
        if not self.model:
            raise TrainingError("no MODEL given: pass a checkpoint directory or Hub id")
        if self.plan_devices is not None and (
            not isinstance(self.plan_devices, int) or self.plan_devices <= 0
        ):
            raise TrainingError(
                f"--plan-devices {self.plan_devices!r} is invalid: must be a positive integer"
            )
        if not self.out and not self.dry_run:
            raise TrainingError("no OUT given: pass the output directory")
        if not self.data and not self.dry_run:
            raise TrainingError("no training data given: pass --data PATH_OR_DATASET")
        for name in (
            "seq_len",
            "batch_size",
            "grad_accum",
            "lora_r",
            "lora_alpha",
            "eval_blocks",
            "keep_checkpoints",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: must be a positive integer"
                )
        for name in ("max_steps", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: must be a positive "
                    "integer (or omitted for one pass over the data)"
                )
        for name in ("warmup", "eval_every", "save_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: must be an integer >= 0"
                )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TrainingError(f"--lr {self.lr!r} is invalid: must be a positive number")
        for name, low, high in (
            ("distill_weight", 0.0, 1.0),
            ("decay_fraction", 0.0, 1.0),
            ("min_lr_ratio", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: must be in [{low}, {high}]"
                )
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise TrainingError(f"--temperature {self.temperature!r} is invalid: must be > 0")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise TrainingError("--max-grad-norm and --weight-decay must be >= 0")
        for name, choices in (
            ("schedule", SCHEDULES),
            ("trainable", TRAINABLE),
            ("mixed_precision", MIXED_PRECISION),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: choose one of " + ", ".join(choices)
                )
        from ..devices import dtype_name

        for name in ("dtype", "teacher_dtype"):
            value = getattr(self, name)
            try:
                dtype_name(value, allow_auto=True)
            except ConfigError:
                raise TrainingError(
                    f"--{_flag(name)} {value!r} is invalid: choose auto, bf16, fp16 or fp32 "
                    "(bfloat16, float16, float32 alike)"
                ) from None
        if not isinstance(self.device, str) or not self.device:
            raise TrainingError(
                f"--device {self.device!r} is invalid: choose auto, cpu, cuda, cuda:N or mps"
            )
        for tracker in self.report_to:
            if tracker not in ("tensorboard", "trackio"):
                raise TrainingError(
                    f"--report-to {tracker!r} is invalid: choose tensorboard or trackio"
                )
        return self


def _flag(name: str) -> str:
    return name.replace("_", "-")


def option_fields() -> list[Any]:
    """The dataclass fields of :class:`TrainOptions` (used to build CLI flags)."""
    return list(fields(TrainOptions))


def field_default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a mapping of option values.

    Raises:
        TrainingError: the file is missing, unreadable, or not a mapping.
    """
    return read_config_file(path, error=TrainingError)
