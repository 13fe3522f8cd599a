"""Copy-structured windows: spans repeated twice, so calibration sees in-context copying.

Natural text rarely repeats a long span, so a conversion calibrated on it alone never sees the
attention that retrieval and copying use (induction heads: a query attends to the token after
an earlier occurrence of the current one). A share of the calibration windows is therefore
rebuilt as ``[span, span]`` with ``span`` half a window long: every other such window repeats
the first half of a sampled text window (natural copying), the others a span of random token
ids (copying that no language statistics can explain). What it buys is measured in
benchmarks/retrieval_research/README.md.

The windows keep their count and length; the record says how many were rebuilt and how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import DataError

# Share of calibration windows rebuilt as repeated spans in the retrieval research
# (benchmarks/retrieval_research/). Opt-in for now: the conversion default stays 0 until its
# effect on the quality benchmark (benchmarks/convert_quality.py) is measured.
RESEARCH_COPY_FRACTION = 1 / 3
# Seed offset of the random spans (kept apart from the probes' seed 0 and the data seed).
RANDOM_SPAN_SEED = 1234


@dataclass(frozen=True)
class CopyRecord:
    """What :func:`add_copy_structure` did (JSON for the manifest)."""

    fraction: float
    text_windows: int  # windows whose first half is repeated
    random_windows: int  # windows of a random span repeated
    span: int  # tokens per span (half a window)
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_copy_fraction(fraction: float) -> float:
    """``fraction`` if it is a number in [0, 1).

    Raises:
        DataError: not a finite number in [0, 1).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise DataError(f"copy fraction must be a number in [0, 1), got {fraction!r}")
    if not 0.0 <= float(fraction) < 1.0:
        raise DataError(f"copy fraction must be in [0, 1), got {fraction}")
    return float(fraction)


def random_span_ids(vocab_size: int, special_ids: Sequence[int]) -> torch.Tensor:
    """Token ids random spans draw from: the vocabulary without the special tokens.

    Raises:
        DataError: fewer than two ordinary ids.
    """
    keep = torch.ones(vocab_size, dtype=torch.bool)
    for i in special_ids:
        if 0 <= int(i) < vocab_size:
            keep[int(i)] = False
    ids = torch.nonzero(keep).flatten()
    if ids.numel() < 2:
        raise DataError(f"a vocabulary of {vocab_size} ids has no room for random spans")
    return ids


def add_copy_structure(
    windows: torch.Tensor,
    fraction: float,
    *,
    span_ids: torch.Tensor,
    seed: int = 0,
) -> tuple[torch.Tensor, CopyRecord]:
    """Rebuild the last ``round(fraction * n)`` of ``n`` windows as spans repeated twice.

    Args:
        windows: ``[n, seq_len]`` token ids (not modified).
        fraction: share of windows to rebuild, in [0, 1).
        span_ids: ids random spans are drawn from (:func:`random_span_ids`).
        seed: the data seed (random spans use ``seed + RANDOM_SPAN_SEED``).

    Returns:
        The new windows ``[n, seq_len]`` and the record.

    Raises:
        DataError: a bad fraction, or windows shorter than 4 tokens while some are rebuilt.
    """
    fraction = check_copy_fraction(fraction)
    n, seq_len = windows.shape
    count = round(fraction * n)
    span = seq_len // 2
    if count and span < 2:
        raise DataError(f"copy-structured windows need seq_len >= 4, got {seq_len}")
    out = windows.clone()
    generator = torch.Generator().manual_seed(seed + RANDOM_SPAN_SEED)
    text = random = 0
    for k, row in enumerate(range(n - count, n)):
        if k % 2 == 0:
            first = windows[row, :span]
            text += 1
        else:
            pick = torch.randint(0, span_ids.numel(), (span,), generator=generator)
            first = span_ids[pick]
            random += 1
        out[row, :span] = first
        out[row, span : 2 * span] = first
    record = CopyRecord(
        fraction=fraction, text_windows=text, random_windows=random, span=span, seed=seed
    )
    return out, record
