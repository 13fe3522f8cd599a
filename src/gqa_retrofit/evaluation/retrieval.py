"""In-context retrieval evaluation: passkey retrieval, the copy probe, long-window perplexity.

Short-window perplexity on natural text does not see whether a model can still find and copy
what is in its context; these probes do (``docs/retrieval.md``):

- ``passkey``: a key hidden in a long haystack, greedy-decoded back
  (:mod:`.retrieval_passkey`);
- ``copy``: repeated random token spans, loss on the second copy (:mod:`.retrieval_copy`);
- ``long-ppl``: loss by position over windows up to the model's context
  (:mod:`.retrieval_long`).

Everything runs in fp32 by default, deterministic for a seed, batch 1, on whatever device the
model is on. :class:`RetrievalOptions` is the one description of a run that the Python API, the
``eval`` CLI and the ``retrofit`` pipeline share.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from .._options import Options, option
from ..errors import ConfigError
from .retrieval_copy import (
    DEFAULT_COPY_TRIALS,
    DEFAULT_SPAN,
    CopyProbeResult,
    copy_probe,
    validate_copy_args,
)
from .retrieval_long import (
    DEFAULT_LONG_WINDOWS,
    LongWindowResult,
    long_window_perplexity,
    validate_long_args,
)
from .retrieval_passkey import (
    DEFAULT_DEPTHS,
    DEFAULT_TRIALS,
    FILLER_HAYSTACK,
    PasskeyResult,
    default_lengths,
    passkey_retrieval,
    validate_passkey_args,
)

PROBES = ("passkey", "copy", "long-ppl")
DEFAULT_PROBES = ("passkey", "copy")  # long-ppl needs a text file: asked for explicitly

__all__ = [
    "PROBES",
    "CopyProbeResult",
    "LongWindowResult",
    "PasskeyResult",
    "ProbeOptions",
    "RetrievalOptions",
    "RetrievalResult",
    "copy_probe",
    "default_lengths",
    "evaluate_retrieval",
    "format_retrieval",
    "long_window_perplexity",
    "parse_probes",
    "passkey_retrieval",
    "plot_retrieval",
    "probes_value",
]


@dataclass(frozen=True)
class RetrievalOptions:
    """Which probes to run and how (validated on construction)."""

    probes: tuple[str, ...] = field(
        default=DEFAULT_PROBES, metadata={"help": f"probes to run, from {', '.join(PROBES)}"}
    )
    seed: int = field(default=0, metadata={"help": "seed of keys, excerpts and random spans"})
    passkey_lengths: tuple[int, ...] | None = field(
        default=None,
        metadata={"help": "prompt lengths in tokens (default: 1K doubling up to the model limit)"},
    )
    passkey_depths: tuple[float, ...] = field(
        default=DEFAULT_DEPTHS, metadata={"help": "needle depths in [0, 1]"}
    )
    passkey_trials: int = field(
        default=DEFAULT_TRIALS, metadata={"help": "prompts per (length, depth)"}
    )
    haystack: str = field(
        default=FILLER_HAYSTACK,
        metadata={"help": "'filler' (repeated sentences) or a UTF-8 text file"},
    )
    copy_span: int = field(default=DEFAULT_SPAN, metadata={"help": "random tokens per span"})
    copy_trials: int = field(default=DEFAULT_COPY_TRIALS, metadata={"help": "spans"})
    long_data: str | None = field(
        default=None, metadata={"help": "UTF-8 text for long-window perplexity"}
    )
    long_seq_len: int | None = field(
        default=None, metadata={"help": "tokens per long window (default: the model limit)"}
    )
    long_windows: int = field(default=DEFAULT_LONG_WINDOWS, metadata={"help": "long windows"})
    bucket_size: int | None = field(
        default=None, metadata={"help": "positions per loss bucket (default: length / 16)"}
    )

    def __post_init__(self) -> None:
        """Raises: ConfigError: an unknown probe or an invalid number (see each probe)."""
        if not self.probes:
            raise ConfigError(f"no retrieval probes asked for; valid: {', '.join(PROBES)}")
        for probe in self.probes:
            if probe not in PROBES:
                raise ConfigError(f"unknown retrieval probe {probe!r}; valid: {', '.join(PROBES)}")
        validate_passkey_args(self.passkey_lengths, self.passkey_depths, self.passkey_trials)
        validate_copy_args(self.copy_span, self.copy_trials)
        validate_long_args(self.long_seq_len, self.long_windows, self.bucket_size)
        if "long-ppl" in self.probes and not self.long_data:
            raise ConfigError(
                "the long-ppl probe needs a text file (long_data; --eval-data on the command line)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "probes": list(self.probes),
            "seed": self.seed,
            "passkey_lengths": None if self.passkey_lengths is None else list(self.passkey_lengths),
            "passkey_depths": list(self.passkey_depths),
            "passkey_trials": self.passkey_trials,
            "haystack": self.haystack,
            "copy_span": self.copy_span,
            "copy_trials": self.copy_trials,
            "long_data": self.long_data,
            "long_seq_len": self.long_seq_len,
            "long_windows": self.long_windows,
            "bucket_size": self.bucket_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrievalOptions:
        """Options back from :meth:`to_dict` (lists become tuples).

        Raises:
            ConfigError: an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown retrieval option {unknown[0]!r}; valid: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)

    def check_data(self, tokenizer: Any, position_limit: int | None) -> None:
        """Check the text inputs against the lengths before any probe runs (nothing is lost).

        Raises:
            DataError: the haystack file is shorter than the longest passkey length, or the
                long-window text shorter than its windows (or either is missing or empty).
            ConfigError: a default length is needed and ``position_limit`` is None.
        """
        from .retrieval_long import window_tokens
        from .retrieval_passkey import haystack_tokens

        if "passkey" in self.probes and self.haystack != FILLER_HAYSTACK:
            longest = max(self.passkey_lengths or default_lengths(position_limit))
            haystack_tokens(tokenizer, self.haystack, longest)
        if "long-ppl" in self.probes and self.long_data:
            seq_len = self.long_seq_len or position_limit
            if seq_len is None:
                raise ConfigError(
                    "the model config has no max_position_embeddings; pass the long-window length"
                )
            window_tokens(tokenizer, self.long_data, seq_len, self.long_windows)


@dataclass
class RetrievalResult:
    """The results of the probes that ran (None for the others) and their seconds."""

    options: RetrievalOptions | None = None
    passkey: PasskeyResult | None = None
    copy: CopyProbeResult | None = None
    long_window: LongWindowResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline numbers: passkey success per length, copy losses, long-window loss."""
        out: dict[str, Any] = {}
        if self.passkey is not None:
            out["passkey_success"] = {str(k): v for k, v in self.passkey.success_rates().items()}
        if self.copy is not None:
            out["copy_second_copy_loss"] = self.copy.second_copy_loss
            out["copy_relative_loss"] = self.copy.relative_loss
        if self.long_window is not None:
            out["long_window_perplexity"] = self.long_window.perplexity
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrievalResult:
        """The result back from :meth:`to_dict`'s JSON (a stage record, a benchmark row).

        Raises:
            ConfigError: recorded options that are no longer valid.
        """
        options = data.get("options")
        return cls(
            options=None if options is None else RetrievalOptions.from_dict(options),
            passkey=None if not data.get("passkey") else PasskeyResult.from_dict(data["passkey"]),
            copy=None if not data.get("copy") else CopyProbeResult.from_dict(data["copy"]),
            long_window=None
            if not data.get("long_window")
            else LongWindowResult.from_dict(data["long_window"]),
            seconds=dict(data.get("seconds", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": None if self.options is None else self.options.to_dict(),
            "summary": self.summary(),
            "passkey": None if self.passkey is None else self.passkey.to_dict(),
            "copy": None if self.copy is None else self.copy.to_dict(),
            "long_window": None if self.long_window is None else self.long_window.to_dict(),
            "seconds": self.seconds,
        }


def evaluate_retrieval(
    model: Any,
    tokenizer: Any | None = None,
    options: RetrievalOptions | None = None,
    *,
    dtype: str = "float32",
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> RetrievalResult:
    """Run the retrieval probes of ``options`` on a model.

    Args:
        model: a loaded causal LM (then pass ``tokenizer``), a local checkpoint directory, or a
            Hub id (loaded at ``dtype``, in eval mode).
        tokenizer: the model's tokenizer (loaded with the model when ``model`` is a path).
        options: the probes and their settings (default :class:`RetrievalOptions`).
        revision: Hub revision (branch, tag or commit) of a ``model`` given as a Hub id.

    Raises:
        ConfigError: invalid options, or a length beyond a learned position table.
        DataError: a text input is missing, empty or too short for its lengths.
        ModelSourceError: the model cannot be found.
    """
    from .perplexity import load_model_and_tokenizer
    from .retrieval_lm import position_limit

    options = options or RetrievalOptions()
    if isinstance(model, (str, os.PathLike)):
        model, loaded = load_model_and_tokenizer(
            model, dtype=dtype, revision=revision, trust_remote_code=trust_remote_code
        )
        tokenizer = tokenizer or loaded
    if tokenizer is None:
        raise ConfigError("a tokenizer is needed when passing a loaded model")
    model.eval()
    options.check_data(tokenizer, position_limit(model))
    result = RetrievalResult(options=options)
    o = options
    if "passkey" in o.probes:
        start = time.perf_counter()
        result.passkey = passkey_retrieval(
            model,
            tokenizer,
            lengths=o.passkey_lengths,
            depths=o.passkey_depths,
            trials=o.passkey_trials,
            seed=o.seed,
            haystack=o.haystack,
        )
        result.seconds["passkey"] = time.perf_counter() - start
    if "copy" in o.probes:
        start = time.perf_counter()
        result.copy = copy_probe(
            model, tokenizer, span_length=o.copy_span, trials=o.copy_trials, seed=o.seed
        )
        result.seconds["copy"] = time.perf_counter() - start
    if "long-ppl" in o.probes and o.long_data:
        start = time.perf_counter()
        result.long_window = long_window_perplexity(
            model,
            tokenizer,
            o.long_data,
            seq_len=o.long_seq_len,
            windows=o.long_windows,
            bucket_size=o.bucket_size,
        )
        result.seconds["long-ppl"] = time.perf_counter() - start
    return result


def parse_probes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"passkey,copy"`` (or a list of names) as a probe tuple; ``"all"`` is every probe.

    Raises:
        ConfigError: an unknown probe name.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return PROBES
    for name in names:
        if name not in PROBES:
            raise ConfigError(f"unknown retrieval probe {name!r}; valid: {', '.join(PROBES)}, all")
    return tuple(dict.fromkeys(names))


def probes_value(text: str) -> str:
    """Parse a ``--probes`` value into its canonical comma-separated form (``all`` spelled out).

    Raises:
        argparse.ArgumentTypeError: an unknown probe name (a usage error, exit 2).
    """
    import argparse

    try:
        return ",".join(parse_probes(text))
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


@dataclass
class ProbeOptions(Options):
    """The retrieval flags of ``eval`` (``--probes`` and its settings), declared once in the
    options regime; ``retrofit`` reuses ``--probes`` and ``--passkey-lengths``. The rules on
    the values are :class:`RetrievalOptions`' (checked when the probes are built)."""

    label: ClassVar[str] = "retrieval"

    probes: str = option(
        "",
        f"comma-separated probes: {', '.join(PROBES)} or all (long-ppl reads --eval-data)",
        parse=probes_value,
        metavar="LIST",
    )
    passkey_lengths: list[int] = option(
        help="passkey prompt lengths in tokens (default: 1024 doubling up to the model's "
        "max_position_embeddings; longer ones are computed and flagged)",
        default_factory=list,
        metavar="N",
    )
    passkey_depths: list[float] = option(
        help="needle depths in [0, 1]",
        default_factory=lambda: list(DEFAULT_DEPTHS),
        shown_default=" ".join(f"{d:g}" for d in DEFAULT_DEPTHS),
        metavar="D",
    )
    passkey_trials: int = option(DEFAULT_TRIALS, "prompts per length and depth", metavar="N")
    haystack: str = option(
        FILLER_HAYSTACK,
        "passkey haystack: the repeated filler sentences or a text file",
        metavar="filler|TEXT",
    )
    copy_span: int = option(DEFAULT_SPAN, "random tokens per copy-probe span", metavar="N")
    copy_trials: int = option(DEFAULT_COPY_TRIALS, "copy-probe spans", metavar="N")
    long_seq_len: int | None = option(
        None,
        "tokens per long window",
        shown_default="the model's max_position_embeddings",
        metavar="N",
    )
    long_windows: int = option(
        DEFAULT_LONG_WINDOWS, "long windows from the start of --eval-data", metavar="N"
    )
    probe_seed: int = option(0, "seed of keys, excerpts and spans", shown_default="0")

    def retrieval_options(self, *, long_data: str | None = None) -> RetrievalOptions | None:
        """The :class:`RetrievalOptions` of these flags (None when no ``--probes`` were given).

        Raises:
            ConfigError: an unknown probe or an invalid value (see :class:`RetrievalOptions`).
        """
        if not self.probes:
            return None
        # the flags are RetrievalOptions' fields by name (lists as tuples), but for these:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        values.update(
            probes=parse_probes(self.probes),
            seed=values.pop("probe_seed"),
            passkey_lengths=values["passkey_lengths"] or None,
            long_data=long_data,
        )
        return RetrievalOptions(**values)


def format_retrieval(result: RetrievalResult) -> list[str]:
    """Plain-text lines of a result (what ``eval --probes`` prints)."""
    lines = []
    if result.passkey is not None:
        p = result.passkey
        lines.append(
            f"passkey retrieval ({p.haystack} haystack, {len(p.depths)} depth(s) x "
            f"{p.trials_per_depth} prompt(s) per length):"
        )
        for row in p.lengths:
            flag = "  (beyond the position limit)" if row.beyond_position_limit else ""
            lines.append(
                f"  {row.length:>7,} tokens  {100 * row.success_rate:5.1f}%  "
                f"({row.successes}/{row.trials}){flag}"
            )
    if result.copy is not None:
        c = result.copy
        lines.append(
            f"copy probe ({c.trials} x {c.span_length} random tokens): second copy "
            f"{c.second_copy_loss:.3f} nats, first copy {c.first_copy_loss:.3f} "
            f"(ratio {c.relative_loss:.3f}; chance {c.chance_loss:.2f})"
        )
    if result.long_window is not None:
        w = result.long_window
        lines.append(
            f"long-window perplexity {w.perplexity:.2f} over {w.windows} window(s) of "
            f"{w.seq_len:,} tokens; loss by position:"
        )
        lines += [f"  {b.start:>7,}-{b.end - 1:<7,} {b.loss:.3f}" for b in w.buckets]
    return lines


def plot_retrieval(results: dict[str, RetrievalResult], path: str | Path) -> Path:
    """Plot several models' results side by side (see :mod:`.retrieval_plot`)."""
    from .retrieval_plot import plot_retrieval as plot

    return plot(results, path)
