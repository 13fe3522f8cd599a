"""Options of a ``retrofit`` run: one dataclass for the Python API, the CLI and YAML configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._options import options_from_mapping, read_config_file
from ..errors import ConfigError


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class RetrofitOptions:
    """Everything that defines a retrofit run (see ``docs/retrofit.md``).

    Raises:
        ConfigError: from :meth:`validate`, naming the bad option and what is valid.
    """

    src: str = _opt("", "source checkpoint: local directory or Hub id")
    out: str = _opt("", "output directory of the run (state, models, report)")
    kv_heads: int = _opt(0, "KV heads after conversion")
    heads: int | None = _opt(None, "query heads after conversion (default: keep)")
    method: str | None = _opt(None, "pooling method (default: the converter's default)")
    base_model: str | None = _opt(
        None, "Hub id of the model SRC is a local copy of (card base_model; default: detected)"
    )
    calibration: list[str] = field(
        default_factory=list, metadata={"help": "calibration text files (data-aware methods)"}
    )
    calibration_tokens: int | None = _opt(None, "calibration tokens (converter default if unset)")
    train_data: list[str] = field(
        default_factory=list, metadata={"help": "training files/globs/datasets (none: no training)"}
    )
    train_steps: int | None = _opt(None, "optimizer steps of the distillation run")
    train_tokens: int | None = _opt(None, "training tokens (instead of --train-steps)")
    teacher: str = _opt("auto", "auto: distil from the source; none: plain fine-tuning")
    eval_data: str | None = _opt(None, "held-out text for perplexity (none: no evaluation)")
    eval_windows: int = _opt(16, "evaluation windows of --eval-seq-len tokens")
    eval_seq_len: int = _opt(512, "tokens per evaluation window")
    contexts: list[int] = field(
        default_factory=lambda: [4096, 32768, 131072], metadata={"help": "cost contexts"}
    )
    bench_contexts: list[int] = field(
        default_factory=lambda: [2048], metadata={"help": "contexts of the decode benchmark"}
    )
    bench_new_tokens: int = _opt(32, "decode steps per benchmark run")
    bench_repeats: int = _opt(3, "benchmark runs per model (interleaved)")
    dtype: str = _opt("keep", "dtype of the converted checkpoint: keep, bf16, fp16, fp32")
    push: str | None = _opt(None, "Hub repo id to push the result to (none: no push)")
    private: bool = _opt(False, "create the Hub repo private")
    train: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "extra training options (lr, seq_len, ...)"}
    )
    trust_remote_code: bool = _opt(False, "allow custom modeling code")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetrofitOptions:
        """Options from a mapping whose keys use ``_`` or ``-``.

        Raises:
            ConfigError: unknown keys (the message lists the valid ones).
        """
        return options_from_mapping(
            cls,
            values,
            label="retrofit",
            error=ConfigError,
            list_fields=("calibration", "train_data", "contexts", "bench_contexts"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> RetrofitOptions:
        """Check the values that can be checked without loading anything; return self.

        Raises:
            ConfigError: the first bad value, named with what would be valid.
        """
        if not self.src:
            raise ConfigError("no SRC given: pass a checkpoint directory or Hub id")
        if not self.out:
            raise ConfigError("no OUT given: pass the output directory of the run")
        if self.base_model is not None:
            from ..conversion.manifest import check_hub_id

            check_hub_id(self.base_model, what="--base-model")
        if self.kv_heads in (0, None):
            raise ConfigError("no --kv-heads given: pass the number of KV heads after conversion")
        if not isinstance(self.kv_heads, int) or self.kv_heads < 1:
            raise ConfigError(f"--kv-heads {self.kv_heads!r} is invalid: must be >= 1")
        if self.heads is not None and (not isinstance(self.heads, int) or self.heads < 1):
            raise ConfigError(f"--heads {self.heads!r} is invalid: must be >= 1")
        if self.train_steps is not None and self.train_tokens is not None:
            raise ConfigError("--train-steps and --train-tokens are exclusive: pass one of them")
        for name in ("train_steps", "train_tokens", "calibration_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"--{_flag(name)} {value!r} is invalid: must be >= 0")
        for name in ("eval_windows", "eval_seq_len", "bench_new_tokens", "bench_repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{_flag(name)} {value!r} is invalid: must be >= 1")
        if self.teacher not in ("auto", "none"):
            raise ConfigError(f"--teacher {self.teacher!r} is invalid: choose auto or none")
        if self.dtype not in ("keep", "bf16", "fp16", "fp32"):
            raise ConfigError(f"--dtype {self.dtype!r} is invalid: choose keep, bf16, fp16, fp32")
        for path in [*self.calibration, *([self.eval_data] if self.eval_data else [])]:
            if not Path(path).is_file():
                raise ConfigError(f"text file {path!r} does not exist")
        if not isinstance(self.train, dict):
            raise ConfigError("'train' in the config must be a mapping of training options")
        return self

    @property
    def trains(self) -> bool:
        """True when the run has a training stage."""
        return bool(self.train_data) and self.train_steps != 0 and self.train_tokens != 0


def _flag(name: str) -> str:
    return name.replace("_", "-")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file of retrofit options into a mapping.

    Raises:
        ConfigError: the file is missing, cannot be parsed, or is not a mapping.
    """
    return read_config_file(path, error=ConfigError)
