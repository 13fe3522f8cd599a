"""Options of ``convert`` and ``retrofit``: one dataclass each for the Python API, CLI and YAML.

:class:`ConvertOptions` declares the conversion options once; :class:`RetrofitOptions` reuses
them, the training ones (:mod:`gqa_retrofit.training.options`) and the shared ones
(:mod:`gqa_retrofit._vocabulary`) with :func:`~gqa_retrofit._options.same_as`, so each
flag means the same in every command. This module imports no torch (the CLI builds its parser
from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._options import (
    Options,
    check_output_path,
    context_list,
    dtype_value,
    option,
    read_config_file,
    same_as,
)
from .._progress import notice
from .._vocabulary import SharedOptions
from ..cost.report import DEFAULT_CONTEXTS
from ..data.options import DataOptions
from ..devices import DTYPE_CHOICES
from ..errors import ConfigError
from ..evaluation.options import source_shape
from ..evaluation.retrieval import ProbeOptions
from ..training.options import TrainOptions

if TYPE_CHECKING:
    from ..conversion.convert import ConversionReport
    from ..cost.config_reader import ModelShape
    from ..evaluation.retrieval import RetrievalOptions

TEACHERS = ("auto", "none")


@dataclass
class ConvertOptions(Options):
    """Everything that defines a ``gqa-retrofit convert`` run.

    Bad values raise :class:`~gqa_retrofit.errors.ConfigError` (the regime's ``error``).
    """

    label: ClassVar[str] = "convert"

    src: str = option("", "checkpoint to convert: local directory or Hub id", positional=True)
    out: str = option("", "output directory (must not exist)", positional=True)
    kv_heads: int | None = option(
        None, "KV heads after conversion (divides the source's KV heads)", minimum=1, metavar="K"
    )
    heads: int | None = option(
        None, "query heads after conversion (default: keep)", minimum=1, metavar="H"
    )
    method: str | None = option(
        None,
        "pooling method (default: mean; the best data-aware method when --calibration is given)",
        metavar="NAME",
    )
    calibration: list[str] = option(
        help="calibration text for data-aware methods (repeatable); a data-aware method "
        "without it calibrates on the embedded Austen novels, announced on stderr and "
        "recorded in the manifest",
        default_factory=list,
        metavar="TEXT",
    )
    calibration_tokens: int | None = option(
        None,
        "calibration token budget",
        minimum=1,
        metavar="N",
        shown_default="the converter's, see docs/convert.md",
    )
    data_options: DataOptions = same_as(SharedOptions, "data_options")
    dtype: str = option(
        "auto",
        "dtype of the floating-point tensors written (auto, also keep: the source's; "
        "bf16 and bfloat16 alike)",
        choices=DTYPE_CHOICES,
        parse=dtype_value,
    )
    max_shard_size: str = option("5GB", "largest output shard, e.g. 500MB, 5GB", metavar="SIZE")
    revision: str | None = same_as(
        SharedOptions, "revision", help="Hub revision (branch, tag or commit) of SRC"
    )
    base_model: str | None = option(
        None,
        "Hub id (owner/name) of the model SRC is a copy of, recorded as the card's base_model "
        "(default: SRC when it is a Hub id, the repo of a Hub cache snapshot, or the embedded "
        "model's declared origin)",
        metavar="REPO_ID",
    )
    device: str = same_as(
        SharedOptions, "device", help="where data-aware methods run their calibration passes"
    )
    overwrite: bool = option(False, "replace an existing OUT", recorded=False)

    def validate(self) -> ConvertOptions:
        """Check the values that can be checked without reading the source; return self.

        Raises:
            ConfigError: the first bad value, named with what would be valid.
        """
        if not self.src:
            raise ConfigError("no SRC given: pass a checkpoint directory or Hub id")
        if not self.out:
            raise ConfigError("no OUT given: pass the output directory")
        if self.kv_heads is None:
            raise ConfigError("no --kv-heads given: pass the number of KV heads after conversion")
        self.check_fields()
        check_base_model(self.base_model)
        return self

    def check_paths(self) -> ModelShape:
        """Check OUT can be written and SRC's config is valid (as ``estimate`` reads it).

        Returns:
            The source's geometry.

        Raises:
            ConfigError: an unwritable or too long OUT, or a bad source config.
            ModelSourceError: SRC cannot be resolved or has a weight entry that is no file.
        """
        check_output_path(self.out)
        return source_shape(self.src, revision=self.revision)

    def run(self) -> ConversionReport:
        """Validate and convert (see :func:`~gqa_retrofit.conversion.convert.convert_checkpoint`).

        A data-aware method without calibration text announces the default text it uses;
        ``heads`` below the source's without a method announces the data-aware default.

        Raises:
            ConfigError: bad options (see :meth:`validate` and the converter).
        """
        from ..conversion.convert import (
            DEFAULT_CALIBRATED_METHOD,
            DEFAULT_CALIBRATION_TOKENS,
            convert_checkpoint,
        )

        self.validate()
        shape = self.check_paths()
        assert self.kv_heads is not None
        method = self.method
        if method is None and self.heads is not None and self.heads != shape.heads:
            method = DEFAULT_CALIBRATED_METHOD
            notice(
                f"--heads {self.heads} needs a data-aware method (mean keeps the {shape.heads} "
                f"query heads): using --method {method}"
            )
        announce_default_calibration(method, self.calibration)
        return convert_checkpoint(
            self.src,
            self.out,
            kv_heads=self.kv_heads,
            heads=self.heads,
            method=method,
            calibration=list(self.calibration) or None,
            calibration_tokens=self.calibration_tokens or DEFAULT_CALIBRATION_TOKENS,
            dtype="keep" if self.dtype == "auto" else self.dtype,
            max_shard_size=self.max_shard_size,
            overwrite=self.overwrite,
            revision=self.revision,
            base_model=self.base_model,
            data_options=self.data_options,
            device=self.device,
        )


def check_base_model(base_model: str | None) -> None:
    """Refuse a ``--base-model`` that is not a Hub model id (None passes).

    Raises:
        ConfigError: the value is not ``owner/name``.
    """
    if base_model is not None:
        from ..sources import check_hub_id

        check_hub_id(base_model, what="--base-model")


def announce_default_calibration(method: str | None, calibration: list[str]) -> bool:
    """Say on stderr when a data-aware ``method`` will calibrate on the embedded corpus.

    Returns:
        True when the default calibration text is used.

    Raises:
        ConfigError: ``method`` is not a registered pooling method (lists the valid ones).
    """
    if calibration or method is None:
        return False
    from ..conversion.pooling import get_pooling

    if not get_pooling(method).needs_calibration:
        return False
    notice(
        f"method {method!r} is data-aware and no --calibration was given: calibrating on the "
        "embedded default text (the training split of Jane Austen's novels; recorded in the "
        "manifest). Pass --calibration TEXT to choose the text."
    )
    return True


@dataclass
class RetrofitOptions(Options):
    """Everything that defines a retrofit run (see ``docs/retrofit.md``).

    Bad values raise :class:`~gqa_retrofit.errors.ConfigError` (the regime's ``error``).
    """

    label: ClassVar[str] = "retrofit"

    src: str = same_as(ConvertOptions, "src", help="source checkpoint: local directory or Hub id")
    out: str = same_as(
        ConvertOptions, "out", help="output directory of the run (state, models, report)"
    )
    kv_heads: int | None = same_as(ConvertOptions, "kv_heads")
    heads: int | None = same_as(ConvertOptions, "heads")
    method: str | None = same_as(
        ConvertOptions,
        "method",
        help="pooling method (default: the best data-aware method; mean only when asked)",
    )
    calibration: list[str] = same_as(
        ConvertOptions,
        "calibration",
        help="calibration text for the data-aware conversion (repeatable; default: the "
        "--train-data, announced on stderr and recorded)",
    )
    calibration_tokens: int | None = same_as(ConvertOptions, "calibration_tokens")
    revision: str | None = same_as(
        ConvertOptions,
        "revision",
        help="Hub revision (branch, tag or commit) of SRC: converted, evaluated, distilled "
        "from and benchmarked at that revision",
    )
    base_model: str | None = same_as(ConvertOptions, "base_model")
    data_options: DataOptions = same_as(SharedOptions, "data_options")
    train_data: list[str] = same_as(
        TrainOptions,
        "train_data",
        help="training data: files, globs, .jsonl/.parquet with a text column or a Hub "
        "dataset (none: no training)",
        aliases=(),
    )
    train_steps: int | None = same_as(
        TrainOptions,
        "train_steps",
        help="optimizer steps of the distillation run (default: one pass over the data; "
        "0: no training)",
        aliases=(),
        minimum=0,
        must="must be >= 0",
    )
    train_tokens: int | None = same_as(
        TrainOptions,
        "train_tokens",
        help="training tokens (instead of --train-steps; 0: no training)",
        aliases=(),
        minimum=0,
        must="must be >= 0",
    )
    teacher: str = option(
        "auto", "auto: distil from SRC; none: plain fine-tuning", choices=TEACHERS
    )
    eval_data: str | None = same_as(
        SharedOptions,
        "eval_data",
        help="held-out text for perplexity (none: no evaluation)",
        aliases=(),
    )
    eval_windows: int = same_as(SharedOptions, "eval_windows", aliases=())
    eval_seq_len: int = same_as(SharedOptions, "eval_seq_len", aliases=())
    probes: str = same_as(
        ProbeOptions,
        "probes",
        help="in-context retrieval probes run on the source, converted and trained models: "
        "comma-separated passkey, copy, long-ppl (reads --eval-data) or all; empty: none "
        "(docs/retrieval.md)",
    )
    passkey_lengths: list[int] = same_as(
        ProbeOptions,
        "passkey_lengths",
        help="passkey prompt lengths of --probes (default: 1024 doubling up to the model's "
        "max_position_embeddings)",
    )
    contexts: list[int] = option(
        help="context lengths of the cost estimate, comma-separated (k = 1024)",
        default_factory=lambda: list(DEFAULT_CONTEXTS),
        flag="context",
        parse=context_list,
        metavar="T[,T...]",
    )
    bench_contexts: list[int] = option(
        help="contexts of the decode benchmark, comma-separated",
        default_factory=lambda: [2048],
        flag="bench-context",
        parse=context_list,
        metavar="T[,T...]",
    )
    bench_new_tokens: int = option(32, "decode steps per benchmark run", minimum=1, metavar="N")
    bench_repeats: int = option(3, "benchmark runs per model (interleaved)", minimum=1, metavar="N")
    dtype: str = same_as(ConvertOptions, "dtype", help="dtype of the converted checkpoint")
    device: str = same_as(
        SharedOptions, "device", help="where evaluation, training and the benchmark run"
    )
    push: str | None = option(None, "push the result to this Hub repo", metavar="REPO_ID")
    private: bool = option(False, "create the Hub repo private")
    push_untrained: bool = option(
        False,
        "allow --push of a model that was not trained or was mean-pooled (refused otherwise)",
    )
    train: dict[str, Any] = option(
        help="extra training options (lr, seq_len, ...; any `train` option)",
        default_factory=dict,
        cli=False,
    )
    trust_remote_code: bool = same_as(SharedOptions, "trust_remote_code")
    overwrite: bool = option(False, "start over in OUT", recorded=False)
    dry_run: bool = option(
        False, "print the plan with time and memory estimates; run nothing", recorded=False
    )

    def retrieval_options(self) -> RetrievalOptions | None:
        """The retrieval probes of this run (None when ``probes`` is empty).

        Raises:
            ConfigError: an unknown probe, or long-ppl without ``eval_data``.
        """
        from ..evaluation.retrieval import RetrievalOptions, parse_probes

        if not self.probes:
            return None
        return RetrievalOptions(
            probes=parse_probes(self.probes),
            passkey_lengths=tuple(self.passkey_lengths) or None,
            long_data=self.eval_data,
        )

    @classmethod
    def build(
        cls, src: str | Path, out: str | Path, *, config: str | Path | None = None, **values: Any
    ) -> RetrofitOptions:
        """Options from a YAML/JSON ``config`` file and explicit values (explicit, not None, win).

        Raises:
            ConfigError: unknown keys or a bad config file.
        """
        merged: dict[str, Any] = read_config_file(config, error=ConfigError) if config else {}
        merged.update({k: v for k, v in values.items() if v is not None})
        merged.update(src=str(src), out=str(out))
        return cls.from_dict(merged)

    def validate(self) -> RetrofitOptions:
        """Check the values that can be checked without loading anything; return self.

        Raises:
            ConfigError: the first bad value, named with what would be valid.
        """
        if not self.src:
            raise ConfigError("no SRC given: pass a checkpoint directory or Hub id")
        if not self.out:
            raise ConfigError("no OUT given: pass the output directory of the run")
        if self.kv_heads in (0, None):
            raise ConfigError("no --kv-heads given: pass the number of KV heads after conversion")
        self.check_fields()
        check_base_model(self.base_model)
        if self.train_steps is not None and self.train_tokens is not None:
            raise ConfigError("--train-steps and --train-tokens are exclusive: pass one of them")
        if not isinstance(self.train, dict):
            raise ConfigError("'train' in the config must be a mapping of training options")
        budget = self.train_steps or self.train_tokens
        if budget and not self.train_data:
            name = "--train-steps" if self.train_steps else "--train-tokens"
            raise ConfigError(
                f"{name} {budget} given but no --train-data: pass the training data "
                "(files, globs or a Hub dataset); nothing is trained without it"
            )
        for path in [*self.calibration, *([self.eval_data] if self.eval_data else [])]:
            if not Path(path).is_file():
                raise ConfigError(f"text file {path!r} does not exist")
        return self

    @property
    def trains(self) -> bool:
        """True when the run has a training stage."""
        return bool(self.train_data) and self.train_steps != 0 and self.train_tokens != 0

    def training_options(self, **values: Any) -> TrainOptions:
        """The :class:`TrainOptions` of the train stage: ``train`` extras, then ``values``.

        Raises:
            TrainingError: an unknown or bad option in ``train``.
        """
        merged: dict[str, Any] = dict(self.train)
        merged.update(values)
        merged.update(
            train_data=list(self.train_data),
            trust_remote_code=self.trust_remote_code,
            data_options=self.data_options,
            device=self.device,
        )
        if merged.get("teacher") == self.src:
            merged["teacher_revision"] = self.revision
        if self.train_steps is not None:
            merged["train_steps"] = self.train_steps
        if self.train_tokens is not None:
            merged["train_tokens"] = self.train_tokens
        return TrainOptions.from_dict(merged)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file of retrofit options into a mapping.

    Raises:
        ConfigError: the file is missing, cannot be parsed, or is not a mapping.
    """
    return read_config_file(path, error=ConfigError)
