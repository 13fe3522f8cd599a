"""Options of ``gqa-retrofit eval``: one dataclass for the Python API, the CLI and YAML/JSON.

The shared evaluation options (``--eval-data``, ``--eval-windows``, ``--eval-seq-len``,
``--trust-remote-code``) come from :mod:`gqa_retrofit._vocabulary`; the retrieval flags
(``--probes`` ...) are :class:`~.retrieval.ProbeOptions`, nested here as one field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .._options import Options, dtype_value, option, same_as
from .._vocabulary import SharedOptions
from ..data.options import DataOptions
from ..devices import DTYPE_CHOICES
from ..errors import ConfigError, ModelSourceError
from .retrieval import ProbeOptions

if TYPE_CHECKING:
    from ..cost.config_reader import ModelShape
    from .perplexity import PerplexityResult


@dataclass
class EvalOptions(Options):
    """Everything that defines a ``gqa-retrofit eval`` run (perplexity on held-out text).

    Bad values raise :class:`~gqa_retrofit.errors.ConfigError` (the regime's ``error``).
    """

    label: ClassVar[str] = "eval"

    model: str = option(
        "", "model to evaluate: local checkpoint directory or Hub id", positional=True
    )
    eval_data: str | None = same_as(SharedOptions, "eval_data", aliases=("data",))
    eval_windows: int = same_as(
        SharedOptions, "eval_windows", aliases=("max-windows", "eval-blocks")
    )
    eval_seq_len: int = same_as(SharedOptions, "eval_seq_len", aliases=("seq-len",))
    all_windows: bool = option(
        False, "evaluate every window of --eval-data (ignores --eval-windows)"
    )
    batch_size: int = option(4, "evaluation windows per forward pass", minimum=1, metavar="N")
    data_options: DataOptions = same_as(SharedOptions, "data_options")
    dtype: str = option(
        "fp32",
        "dtype the model is loaded in (auto: the checkpoint's; bf16 and bfloat16 alike)",
        choices=DTYPE_CHOICES,
        parse=dtype_value,
    )
    device: str = same_as(SharedOptions, "device")
    revision: str | None = same_as(
        SharedOptions, "revision", help="Hub revision (branch, tag or commit) of MODEL"
    )
    trust_remote_code: bool = same_as(SharedOptions, "trust_remote_code")
    retrieval: ProbeOptions = option(
        help="in-context retrieval probes (docs/retrieval.md)",
        default_factory=ProbeOptions,
        nested=True,
    )
    plot: str | None = option(None, "write the probes' plot", metavar="PNG", recorded=False)

    def validate(self) -> EvalOptions:
        """Check every value and that the text exists; return self.

        Raises:
            ConfigError: the first bad value, named with what would be valid.
        """
        if not self.model:
            raise ConfigError("no MODEL given: pass a checkpoint directory or Hub id")
        if not self.eval_data:
            raise ConfigError("no --eval-data given: pass the held-out text file")
        self.check_fields()
        from ..data import resolve_sources

        resolve_sources([self.eval_data])  # a missing file or empty glob: DataError, exit 2
        return self

    def check_source(self) -> ModelShape:
        """Read MODEL's config as ``estimate`` does and check the window fits its positions.

        Raises:
            ConfigError: a bad config, or ``--eval-seq-len`` beyond the position limit.
            ModelSourceError: MODEL cannot be resolved or has a weight file that is no file.
        """
        shape = source_shape(self.model, revision=self.revision)
        check_positions(self.model, shape, self.eval_seq_len, flag="--eval-seq-len")
        return shape

    def run(self) -> PerplexityResult:
        """Validate, then evaluate (see :func:`.perplexity.evaluate_perplexity`).

        Raises:
            ConfigError: bad options (see :meth:`validate`).
        """
        from .perplexity import evaluate_perplexity

        self.validate()
        self.check_source()
        assert self.eval_data is not None
        return evaluate_perplexity(
            self.model,
            self.eval_data,
            seq_len=self.eval_seq_len,
            max_windows=None if self.all_windows else self.eval_windows,
            batch_size=self.batch_size,
            dtype=self.dtype,
            device=self.device,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            data_options=self.data_options,
        )


def check_local_checkpoint(model: str | Path) -> None:
    """Refuse a local checkpoint whose weight, index or config entries are not regular files.

    Raises:
        ModelSourceError: e.g. ``model.safetensors`` is a directory.
    """
    path = Path(model)
    if not path.is_dir():
        return
    for entry in sorted(path.iterdir()):
        if entry.name.endswith((".safetensors", ".json")) and not entry.is_file():
            kind = "directory" if entry.is_dir() else "special file"
            raise ModelSourceError(
                f"{str(entry)!r} is a {kind}: a checkpoint's weights, index and configs must be "
                "regular files"
            )


def source_shape(model: str | Path, *, revision: str | None = None) -> ModelShape:
    """MODEL's geometry, read and validated exactly as ``gqa-retrofit estimate`` does.

    Raises:
        ConfigError: a config field is missing or invalid (0 or "eight" heads, head_dim -1).
        ModelSourceError: MODEL cannot be resolved, or a weight file is no regular file.
    """
    from ..cost import estimate

    check_local_checkpoint(model)
    return estimate(str(model), contexts=(1,), revision=revision).shape


def check_positions(model: str | Path, shape: ModelShape, tokens: int, *, flag: str) -> None:
    """Refuse ``tokens`` positions beyond what MODEL can run.

    Raises:
        ConfigError: more positions than the model's position limit.
    """
    limit = shape.max_position or shape.positions
    if limit and tokens > limit:
        raise ConfigError(
            f"{flag} {tokens} is beyond the position limit of {str(model)!r} ({limit} tokens): "
            f"choose at most {limit}"
        )
