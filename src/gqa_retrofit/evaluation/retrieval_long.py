"""Long-window perplexity and loss by position.

The text is tokenized without special tokens and cut into non-overlapping windows of
``seq_len - len(BOS)`` tokens; each window is scored as ``[BOS] + window`` (BOS where the
tokenizer has one), so every window is ``seq_len`` tokens and position ``p`` has exactly ``p``
tokens of context. The loss of each predicted position ``p = 1 .. seq_len - 1`` is averaged over
the windows and then over buckets of ``bucket_size`` positions. A model that uses distant
context has a falling (or flat) curve; one that no longer does rises towards its short-context
loss as the distance grows.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from .._progress import progress
from ..errors import ConfigError, DataError
from .retrieval_lm import bos_ids, check_length, position_limit, token_losses

DEFAULT_LONG_WINDOWS = 2
DEFAULT_BUCKETS = 16  # bucket_size defaults to seq_len // 16


@dataclass(frozen=True)
class PositionBucket:
    """Mean loss over predicted positions ``start <= p < end`` (all windows)."""

    start: int
    end: int
    loss: float
    tokens: int


@dataclass
class LongWindowResult:
    """Perplexity over whole long windows, and the loss per bucket of positions."""

    data: str
    seq_len: int
    windows: int
    bucket_size: int
    bos_token_id: int | None
    beyond_position_limit: bool
    loss: float
    tokens: int  # predicted tokens the loss is averaged over
    buckets: list[PositionBucket]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LongWindowResult:
        """The result back from :meth:`to_dict`'s JSON."""
        keys = ("data", "seq_len", "windows", "bucket_size", "bos_token_id")
        return cls(
            **{k: data[k] for k in keys},
            beyond_position_limit=data["beyond_position_limit"],
            loss=data["loss"],
            tokens=data["tokens"],
            buckets=[PositionBucket(**b) for b in data["buckets"]],
        )

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "seq_len": self.seq_len,
            "windows": self.windows,
            "bucket_size": self.bucket_size,
            "bos_token_id": self.bos_token_id,
            "beyond_position_limit": self.beyond_position_limit,
            "loss": self.loss,
            "perplexity": self.perplexity,
            "tokens": self.tokens,
            "buckets": [asdict(b) for b in self.buckets],
        }


def validate_long_args(seq_len: int | None, windows: int, bucket_size: int | None) -> None:
    """Check the long-window arguments.

    Raises:
        ConfigError: ``seq_len`` < 2, ``windows`` < 1 or ``bucket_size`` < 1.
    """
    if seq_len is not None and seq_len < 2:
        raise ConfigError(f"long-window length must be at least 2 tokens, got {seq_len}")
    if windows < 1:
        raise ConfigError(f"long-window count must be at least 1, got {windows}")
    if bucket_size is not None and bucket_size < 1:
        raise ConfigError(f"position bucket size must be at least 1 token, got {bucket_size}")


def window_tokens(
    tokenizer: Any, data: str | os.PathLike[str], seq_len: int, windows: int
) -> list[int]:
    """The tokens of ``data``, checked to fill ``windows`` windows of ``seq_len`` (with BOS).

    Raises:
        DataError: the text is missing, empty or too short.
    """
    from .perplexity import read_text

    body = seq_len - len(bos_ids(tokenizer))
    ids: list[int] = tokenizer(read_text(data), add_special_tokens=False)["input_ids"]
    if len(ids) < windows * body:
        raise DataError(
            f"text {str(data)!r} has {len(ids)} tokens, fewer than {windows} window(s) of "
            f"{body} text tokens; use a longer text, fewer windows or a shorter length"
        )
    return ids


def long_window_perplexity(
    model: Any,
    tokenizer: Any,
    data: str | os.PathLike[str],
    *,
    seq_len: int | None = None,
    windows: int = DEFAULT_LONG_WINDOWS,
    bucket_size: int | None = None,
) -> LongWindowResult:
    """Loss of a loaded causal LM over long windows of ``data``, overall and by position.

    Args:
        model: a loaded causal LM.
        tokenizer: its tokenizer.
        data: path of a UTF-8 text file.
        seq_len: tokens per window including BOS (default: ``max_position_embeddings``).
        windows: windows from the start of the text.
        bucket_size: predicted positions per bucket (default ``seq_len // 16``, at least 1).

    Raises:
        ConfigError: bad sizes, no position limit to default to, or ``seq_len`` beyond a learned
            position table.
        DataError: the text is missing, empty or shorter than ``windows`` windows.
    """
    import torch

    validate_long_args(seq_len, windows, bucket_size)
    if seq_len is None:
        seq_len = position_limit(model)
        if seq_len is None:
            raise ConfigError(
                "the model config has no max_position_embeddings; pass the long-window length"
            )
    beyond = check_length(model, seq_len, what="long-window length")
    bos = bos_ids(tokenizer)
    body = seq_len - len(bos)
    ids = window_tokens(tokenizer, data, seq_len, windows)
    device = next(model.parameters()).device
    total = torch.zeros(seq_len - 1, dtype=torch.float64)
    for w in progress(range(windows), desc="long-window perplexity", unit="window"):
        window = torch.tensor([bos + ids[w * body : (w + 1) * body]], device=device)
        total += token_losses(model, window)[0].double().cpu()
    mean = total / windows  # mean[i]: loss of position i + 1
    size = bucket_size or max(1, seq_len // DEFAULT_BUCKETS)
    buckets = []
    for start in range(1, seq_len, size):
        end = min(start + size, seq_len)
        part = mean[start - 1 : end - 1]
        buckets.append(PositionBucket(start, end, float(part.mean()), len(part) * windows))
    return LongWindowResult(
        data=str(data),
        seq_len=seq_len,
        windows=windows,
        bucket_size=size,
        bos_token_id=bos[0] if bos else None,
        beyond_position_limit=beyond,
        loss=float(mean.mean()),
        tokens=(seq_len - 1) * windows,
        buckets=buckets,
    )
