"""Perplexity on held-out text.

Protocol (``shared/notes/assets.md``): tokenize the whole text without special tokens, cut it
into non-overlapping windows of ``seq_len`` tokens, and average the next-token loss over the
``seq_len - 1`` predicted tokens of each window. Perplexity is ``exp`` of that mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._options import check_int_argument
from .._progress import progress
from ..data import DataOptions, resolve_sources, sample_windows
from ..data import read_text as data_read_text
from ..devices import dtype_name
from ..errors import ConfigError, ModelSourceError


@dataclass(frozen=True)
class PerplexityResult:
    """Mean next-token loss and perplexity over ``windows`` windows of ``seq_len`` tokens."""

    perplexity: float
    loss: float
    tokens: int  # predicted tokens the loss is averaged over
    windows: int
    seq_len: int
    text_tokens: int  # tokens read from the data
    data: str  # the sources' names (relative paths or Hub ids)
    dtype: str = "fp32"  # what the model ran in (devices.DTYPE_NAMES)
    device: str = "cpu"
    data_record: dict[str, Any] = field(default_factory=dict)  # gqa_retrofit.data.DataRecord

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_text(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    options: DataOptions | None = None,
) -> str:
    """The text of ``path`` (any source :mod:`gqa_retrofit.data` reads; documents joined by a
    blank line; a text file gives its exact content).

    Raises:
        DataError: the source is missing, unreadable or empty (whitespace only).
    """
    return data_read_text(path, options)


def load_model_and_tokenizer(
    model: str | os.PathLike[str],
    *,
    dtype: str = "auto",
    device: Any = "auto",
    revision: str | None = None,
    token: str | bool | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local directory or a Hub id, in eval mode.

    Args:
        dtype: a name from :mod:`gqa_retrofit.devices` (``auto``: the checkpoint's dtype).
        device: ``auto`` (the accelerator when present), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Raises:
        ModelSourceError: the path or Hub id cannot be resolved or has no config.json.
        ConfigError: unknown or unavailable device, unknown dtype, a dtype the device cannot
            compute in, or one too narrow for the checkpoint's values.
    """
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..conversion.streaming import require_safetensors
    from ..devices import (
        check_cast_finite,
        checkpoint_dtype,
        resolve_device,
        resolve_dtype,
        torch_dtype,
    )
    from ..patching import register_custom_types
    from ..sources import resolve_checkpoint_dir

    register_custom_types()  # the tool's own *_gqa types load without trust_remote_code
    dtype_name(dtype, allow_auto=True)
    target = resolve_device(device)
    local = resolve_checkpoint_dir(str(model), revision=revision, token=token)
    config = json.loads((Path(local) / "config.json").read_text(encoding="utf-8"))
    source = checkpoint_dtype(config)
    chosen = resolve_dtype(dtype, checkpoint=source, device=target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(local, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelSourceError(f"no usable tokenizer in {str(model)!r}: {err}") from err
    require_safetensors(local)  # pickled .bin weights are never loaded
    loaded = AutoModelForCausalLM.from_pretrained(
        local,
        dtype=torch_dtype(chosen),
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
    )
    check_cast_finite(loaded.named_parameters(), chosen, source=source)
    return loaded.to(target).eval(), tokenizer


def token_windows(token_ids: list[int], seq_len: int, max_windows: int | None) -> list[list[int]]:
    """Non-overlapping windows of exactly ``seq_len`` tokens (the remainder is dropped)."""
    count = len(token_ids) // seq_len
    if max_windows is not None:
        count = min(count, max_windows)
    return [token_ids[i * seq_len : (i + 1) * seq_len] for i in range(count)]


def evaluate_perplexity(
    model: Any,
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    tokenizer: Any | None = None,
    seq_len: int = 512,
    max_windows: int | None = 16,
    batch_size: int = 4,
    dtype: str = "auto",
    device: Any = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    data_options: DataOptions | None = None,
    token: str | bool | None = None,
) -> PerplexityResult:
    """Perplexity of ``model`` on the text file ``data``.

    Args:
        model: a loaded causal LM (then pass ``tokenizer``), a local checkpoint directory, or a
            Hub id.
        data: evaluation data: a text file, or any sources :mod:`gqa_retrofit.data` reads
            (.jsonl/.json/.parquet with a text column, directories, globs, datasets). Each
            source's documents are joined by EOS; windows are split evenly over the sources
            and taken from the start of each (one text file: exactly its first windows).
        seq_len: window length in tokens (loss over ``seq_len - 1`` predictions per window).
        max_windows: evaluate at most this many windows from the start (None: all).
        batch_size: windows per forward pass.
        dtype, device: for a model loaded here (see :func:`load_model_and_tokenizer`); a loaded
            model runs where it is, in its dtype.
        revision: Hub revision (branch, tag or commit) of a ``model`` given as a Hub id.
        data_options: text column, dataset config/split/revision.
        token: Hub token for Hub datasets (never recorded).

    Raises:
        ConfigError: ``seq_len`` < 2 or beyond the model's position limit, ``max_windows`` or
            ``batch_size`` < 1; a bad or unavailable ``device``/``dtype``.
        DataError: the text is missing, empty, or shorter than one window.
        ModelSourceError: the model cannot be found.
    """
    import torch

    check_int_argument("seq_len", seq_len, minimum=2)
    if max_windows is not None:
        check_int_argument("max_windows", max_windows)
    check_int_argument("batch_size", batch_size)
    specs = data if isinstance(data, (str, os.PathLike)) else list(data)
    sources = resolve_sources(specs)  # bad data fails before a model is loaded
    if isinstance(model, (str, os.PathLike)):
        model, loaded_tokenizer = load_model_and_tokenizer(
            model,
            dtype=dtype,
            device=device,
            revision=revision,
            trust_remote_code=trust_remote_code,
        )
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise ConfigError("a tokenizer is needed when passing a loaded model")
    sample = sample_windows(
        sources,
        tokenizer,
        seq_len=seq_len,
        windows=max_windows,
        options=data_options,
        token=token,
        mode="first",
        what="evaluation data",
    )
    from .retrieval_lm import position_limit

    limit = position_limit(model)
    if limit is not None and seq_len > limit:
        raise ConfigError(
            f"seq_len {seq_len} is beyond the position limit of this "
            f"{model.config.model_type} model ({limit} tokens): choose at most {limit}"
        )
    windows = sample.windows.tolist()
    weight = next(model.parameters())
    device = weight.device
    total_nll = 0.0
    batches = range(0, len(windows), batch_size)
    with torch.inference_mode():
        for start in progress(batches, desc="perplexity", unit="batch"):
            batch = torch.tensor(windows[start : start + batch_size], device=device)
            logits = model(input_ids=batch, use_cache=False).logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                batch[:, 1:].reshape(-1),
                reduction="sum",
            )
            total_nll += float(nll)
    predicted = len(windows) * (seq_len - 1)
    loss = total_nll / predicted
    return PerplexityResult(
        perplexity=math.exp(loss),
        loss=loss,
        tokens=predicted,
        windows=len(windows),
        seq_len=seq_len,
        text_tokens=sum(source.tokens_read for source in sample.record.sources),
        data=", ".join(sample.record.names),
        dtype=dtype_name(weight.dtype),
        device=str(device),
        data_record=sample.record.to_dict(),
    )
