"""Token windows drawn from every source: the one sampler behind calibration and evaluation.

Each source's documents are tokenized without special tokens and joined by the tokenizer's EOS
(a source that is one text file is just that file's tokens), then cut into non-overlapping
windows of ``seq_len`` tokens from the source's start. The requested windows are split evenly
over the sources (a source that has too few gives its share to the others, in order), and:

- ``mode="sample"`` (calibration): each source's windows are a seeded random choice among its
  windows, read from at most ``max(16 x its share, 65,536)`` tokens of the source;
- ``mode="first"`` (evaluation): each source's leading windows, at most the number requested,
  so one text file gives exactly the windows the perplexity protocol defines.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError
from .documents import dataset_documents, file_documents, hub_commit
from .options import DataOptions
from .record import DataRecord, FileRecord, SourceRecord
from .sources import DataSource, resolve_sources

MODES = ("sample", "first")
SCAN_FACTOR = 16  # sample mode reads up to this many times a source's share
MIN_SCAN_TOKENS = 65_536
_SLICE_CHARS = 65_536  # sample mode tokenizes long documents in slices cut at line ends


@dataclass
class TokenSample:
    """Windows ``[n, seq_len]`` (int64) and the record of where they came from."""

    windows: torch.Tensor
    record: DataRecord

    @property
    def tokens(self) -> int:
        return int(self.windows.numel())


def _slices(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, each ending after a run of whitespace
    that contains a newline (so no word and no blank-line run is split)."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + size)
        if cut < 0:
            yield text[start:]
            return
        while cut < len(text) and text[cut].isspace():
            cut += 1
        yield text[start:cut]
        start = cut


class _SourceStream:
    """Tokens of one source, read on demand, with the bookkeeping of its record."""

    def __init__(
        self, source: DataSource, tokenizer: Any, options: DataOptions, token: Any, sliced: bool
    ) -> None:
        self.source, self.tokenizer, self.options = source, tokenizer, options
        self.token, self.sliced = token, sliced
        self.eos = tokenizer.eos_token_id
        self.ids: list[int] = []
        self.documents = 0
        self.files_read: list[FileRecord] = []
        self.exhausted = False
        self._pieces = self._token_pieces()

    def _documents(self) -> Iterator[str]:
        if self.source.is_dataset:
            yield from dataset_documents(self.source, self.options, self.token)
            self.files_read = [FileRecord.of(f.path, f.name) for f in self.source.files]
            return
        for data_file in self.source.files:
            self.files_read.append(FileRecord.of(data_file.path, data_file.name))
            yield from file_documents(self.source, data_file, self.options.text_column)

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return ids

    def _token_pieces(self) -> Iterator[list[int]]:
        for document in self._documents():
            if self.documents and self.eos is not None:
                yield [self.eos]
            self.documents += 1
            if self.sliced and len(document) > 2 * _SLICE_CHARS:
                for piece in _slices(document, _SLICE_CHARS):
                    yield self._encode(piece)
            else:
                yield self._encode(document)

    def read(self, limit: int | None) -> None:
        """Read until at least ``limit`` tokens are held (None: the whole source)."""
        while limit is None or len(self.ids) < limit:
            piece = next(self._pieces, None)
            if piece is None:
                self.exhausted = True
                return
            self.ids.extend(piece)

    def available(self, seq_len: int) -> int:
        return len(self.ids) // seq_len


def _shares(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _allocate(wanted: int, shares: list[int], available: list[int]) -> list[int]:
    """Each source's share, capped by what it has; the deficit goes to the others, in order."""
    taken = [min(s, a) for s, a in zip(shares, available, strict=True)]
    missing = wanted - sum(taken)
    while missing > 0:
        spare = [i for i, (t, a) in enumerate(zip(taken, available, strict=True)) if t < a]
        if not spare:
            break
        for i in spare:
            if missing == 0:
                break
            taken[i] += 1
            missing -= 1
    return taken


def _choose(n_available: int, count: int, mode: str, seed: int, index: int) -> list[int]:
    if mode == "first" or count >= n_available:
        return list(range(count))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return sorted(torch.randperm(n_available, generator=generator)[:count].tolist())


def sample_windows(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | DataSource],
    tokenizer: Any,
    *,
    seq_len: int,
    windows: int | None,
    options: DataOptions | None = None,
    token: str | bool | None = None,
    mode: str = "sample",
    what: str = "data",
) -> TokenSample:
    """Draw ``windows`` windows of ``seq_len`` tokens from all of ``specs`` (None: every window).

    Args:
        specs: files, directories, globs, dataset repositories, Hub dataset ids (or resolved
            :class:`DataSource` objects).
        tokenizer: a transformers tokenizer.
        seq_len: tokens per window.
        windows: how many windows; with ``"first"`` at most this many (fewer when the data
            is shorter; None: every window of every source).
        options: text column, dataset config/split/revision and the seed.
        token: Hub token for Hub datasets (never recorded or printed).
        mode: ``"sample"`` or ``"first"`` (see the module docstring).
        what: how errors name the data (``"calibration data"``, ``"evaluation data"``).

    Raises:
        DataError: bad arguments, a source that cannot be read, no non-blank document, not
            one whole window, or (``"sample"``) fewer windows in all sources than requested.
    """
    if mode not in MODES:
        raise DataError(f"unknown sampling mode {mode!r}; valid: {', '.join(MODES)}")
    if seq_len < 1:
        raise DataError(f"seq_len must be at least 1 token, got {seq_len}")
    if windows is not None and windows < 1:
        raise DataError(f"windows must be at least 1, got {windows}")
    if windows is None and mode != "first":
        raise DataError("taking every window needs mode='first'")
    options = options or DataOptions()
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    sources = [s if isinstance(s, DataSource) else resolve_sources(s)[0] for s in specs]
    if not sources:
        raise DataError(f"no {what} given: give at least one file, directory, glob or id")
    streams = [
        _SourceStream(s, tokenizer, options, token, sliced=mode == "sample") for s in sources
    ]
    shares = _shares(windows or 0, len(sources))
    for share, stream in zip(shares, streams, strict=True):
        if windows is None:
            limit = None
        elif mode == "first":
            limit = windows * seq_len  # enough to cover every other source's deficit
        else:
            limit = max(SCAN_FACTOR * share * seq_len, MIN_SCAN_TOKENS)
        stream.read(limit)
    names = ", ".join(s.name for s in sources)
    if not any(stream.documents for stream in streams):
        raise DataError(f"{what} {names!r} is empty: no non-blank documents found")
    available = [stream.available(seq_len) for stream in streams]
    taken = available if windows is None else _allocate(windows, shares, available)
    total = sum(taken)
    if total == 0 or (mode == "sample" and windows is not None and total < windows):
        read = sum(len(stream.ids) for stream in streams)
        if mode == "first" or windows is None:
            raise DataError(
                f"{what} {names!r} has {read} tokens, fewer than one window of {seq_len}; "
                "give more text or a smaller --seq-len"
            )
        raise DataError(
            f"{what} {names!r} has {read} tokens, fewer than the {windows * seq_len} requested "
            f"({windows} windows of {seq_len}, {sum(available)} available); give more text or "
            "fewer tokens"
        )
    parts: list[torch.Tensor] = []
    records: list[SourceRecord] = []
    for i, (stream, count) in enumerate(zip(streams, taken, strict=True)):
        n = available[i]
        grid = torch.tensor(stream.ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
        chosen = _choose(n, count, mode, options.data_seed, i)
        parts.append(grid[chosen])
        source = stream.source
        records.append(
            SourceRecord(
                name=source.name,
                kind=source.kind,
                files=stream.files_read,
                dataset=source.dataset_fields(options, hub_commit(source, options, token)),
                documents=stream.documents,
                tokens_read=len(stream.ids),
                exhausted=stream.exhausted,
                windows=count,
                tokens=count * seq_len,
            )
        )
    tensor = torch.cat(parts)
    record = DataRecord(
        sources=records,
        mode=mode,
        seq_len=seq_len,
        windows=int(tensor.shape[0]),
        tokens=int(tensor.numel()),
        seed=options.data_seed,
        text_column=options.text_column,
        digest=hashlib.sha256(tensor.numpy().tobytes()).hexdigest(),
    )
    return TokenSample(tensor, record)
