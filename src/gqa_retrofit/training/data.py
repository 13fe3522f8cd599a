"""Training data: read documents through :mod:`gqa_retrofit.data`, tokenize, pack into blocks.

Sources (``--data``, repeatable): plain text files, directories and globs (one document per
text file), ``.jsonl``/``.json``/``.parquet`` files with a text column (one document per row),
local dataset repositories and Hub dataset ids (streamed, read only as far as the run needs).
Documents are tokenized without special tokens and joined with the tokenizer's EOS after each
one; the token stream is cut into ``seq_len`` blocks (the incomplete tail is dropped). The block
order of each epoch is a permutation drawn from ``(seed, epoch)``, so the batch of any step is
known without replaying the run: that is what makes resuming exact.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import DataOptions, DataRecord, DataSource, local_files, resolve_sources
from ..data.documents import dataset_documents, file_documents, hub_commit
from ..data.record import FileRecord, SourceRecord
from ..errors import DataError


@dataclass
class PackedData:
    """Token blocks ready for training.

    Attributes:
        blocks: ``[n_blocks, seq_len]`` token ids (int64).
        documents: documents read.
        fingerprint: sha256 of the block tensor (same data, tokenizer and seq_len -> same hash).
        sources: the sources' names (relative paths or Hub ids), for the training record.
        record: what was read, source by source (files with SHA-256, documents, tokens in the
            blocks): :meth:`gqa_retrofit.data.DataRecord.to_dict`.
    """

    blocks: torch.Tensor
    documents: int
    fingerprint: str
    sources: list[str]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def n_blocks(self) -> int:
        return int(self.blocks.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.blocks.numel())


class _Packer:
    """Appends documents to one token stream and cuts whole ``seq_len`` blocks off it."""

    def __init__(self, tokenizer: Any, seq_len: int) -> None:
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise DataError("the tokenizer has no EOS token: cannot separate packed documents")
        self.tokenizer, self.seq_len = tokenizer, seq_len
        self.stream: list[int] = []
        self.blocks: list[list[int]] = []
        self.documents = 0
        self.position = 0  # tokens appended so far

    def add(self, text: str) -> None:
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        self.stream.extend(ids)
        self.stream.append(self.eos)
        self.position += len(ids) + 1
        self.documents += 1
        whole = len(self.stream) // self.seq_len
        if whole:
            seq = self.seq_len
            self.blocks.extend(self.stream[i * seq : (i + 1) * seq] for i in range(whole))
            del self.stream[: whole * seq]

    def tensor(self, max_blocks: int | None) -> torch.Tensor:
        blocks = self.blocks if max_blocks is None else self.blocks[:max_blocks]
        if not blocks:
            return torch.empty((0, self.seq_len), dtype=torch.long)
        return torch.tensor(blocks, dtype=torch.long)


def pack_documents(
    documents: Iterable[str],
    tokenizer: Any,
    seq_len: int,
    *,
    max_blocks: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Tokenize documents, append EOS after each, and cut the stream into ``seq_len`` blocks.

    Returns:
        ``(blocks [n, seq_len] int64, documents read)``. Stops reading once ``max_blocks``
        blocks are complete.

    Raises:
        DataError: the tokenizer has no EOS token.
    """
    packer = _Packer(tokenizer, seq_len)
    for text in documents:
        packer.add(text)
        if max_blocks is not None and len(packer.blocks) >= max_blocks:
            break
    return packer.tensor(max_blocks), packer.documents


def _pack_source(
    packer: _Packer,
    source: DataSource,
    options: DataOptions,
    token: str | bool | None,
    max_blocks: int | None,
) -> tuple[list[FileRecord], int, int]:
    """Pack one source; returns (files read, documents, stream range start)."""
    start, documents = packer.position, packer.documents
    files: list[FileRecord] = []
    if source.is_dataset:
        texts: Iterable[str] = dataset_documents(source, options, token)
        files = [FileRecord.of(f.path, f.name) for f in source.files]
    else:

        def from_files() -> Iterable[str]:
            for data_file in source.files:
                files.append(FileRecord.of(data_file.path, data_file.name))
                yield from file_documents(source, data_file, options.text_column)

        texts = from_files()
    for text in texts:
        packer.add(text)
        if max_blocks is not None and len(packer.blocks) >= max_blocks:
            break
    return files, packer.documents - documents, start


def load_packed(
    specs: Sequence[str | os.PathLike[str]],
    tokenizer: Any,
    seq_len: int,
    *,
    text_column: str = "text",
    max_blocks: int | None = None,
    what: str = "training data",
    options: DataOptions | None = None,
    token: str | bool | None = None,
) -> PackedData:
    """Resolve, read, tokenize and pack ``specs``.

    Local data is read whole (so the blocks do not depend on the run's length); with a Hub
    dataset among the sources, reading stops once ``max_blocks`` blocks are complete.

    Args:
        specs: files, directories, globs, dataset repositories or Hub dataset ids.
        text_column: column of the text (used when ``options`` is None).
        options: text column, dataset config/split/revision (its seed is not used: the
            trainer's seed orders the blocks).
        token: Hub token for Hub datasets (never recorded).

    Raises:
        DataError: a source is missing or unreadable, no documents, or fewer tokens than one
            block of ``seq_len``.
    """
    options = options or DataOptions(text_column=text_column)
    sources = resolve_sources(list(specs))
    limit = max_blocks if any(s.kind == "hub" for s in sources) else None
    packer = _Packer(tokenizer, seq_len)
    read: list[tuple[DataSource, list[FileRecord], int, int]] = []
    for source in sources:
        files, documents, start = _pack_source(packer, source, options, token, limit)
        read.append((source, files, documents, start))
        if limit is not None and len(packer.blocks) >= limit:
            break
    blocks = packer.tensor(limit)
    names = ", ".join(s.name for s in sources)
    if packer.documents == 0:
        raise DataError(f"{what} {names!r} is empty: no non-blank documents found")
    if blocks.shape[0] == 0:
        raise DataError(
            f"{what} {names!r} is shorter than one block of {seq_len} tokens: "
            "add text or lower --seq-len"
        )
    digest = hashlib.sha256(blocks.numpy().tobytes()).hexdigest()
    used = int(blocks.numel())
    records = []
    for index, (source, files, documents, start) in enumerate(read):
        end = read[index + 1][3] if index + 1 < len(read) else packer.position
        tokens = max(0, min(end, used) - start)
        records.append(
            SourceRecord(
                name=source.name,
                kind=source.kind,
                files=files,
                dataset=source.dataset_fields(options, hub_commit(source, options, token)),
                documents=documents,
                tokens_read=end - start,
                exhausted=limit is None or len(packer.blocks) < limit,
                windows=sum(1 for b in range(blocks.shape[0]) if start <= b * seq_len < end),
                tokens=tokens,
            )
        )
    record = DataRecord(
        sources=records,
        mode="packed",
        seq_len=seq_len,
        windows=int(blocks.shape[0]),
        tokens=used,
        seed=None,
        text_column=options.text_column,
        digest=digest,
    )
    return PackedData(blocks, packer.documents, digest, record.names, record.to_dict())


def source_files(specs: Sequence[str | os.PathLike[str]]) -> set[str]:
    """Resolved local files behind ``specs`` (Hub ids contribute nothing)."""
    return {str(p) for p in local_files(list(specs))}


def epoch_order(n_blocks: int, seed: int, epoch: int) -> torch.Tensor:
    """The block permutation of ``epoch``: a pure function of ``(n_blocks, seed, epoch)``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_blocks, generator=generator)


def block_indices(n_blocks: int, seed: int, start: int, count: int) -> list[int]:
    """Indices of the ``count`` blocks at global positions ``start .. start+count-1``.

    Position ``p`` is block ``epoch_order(p // n_blocks)[p % n_blocks]``: data order over any
    number of epochs, addressable from the position alone (so resume needs only the step).
    """
    out: list[int] = []
    cache: dict[int, torch.Tensor] = {}
    for pos in range(start, start + count):
        epoch, offset = divmod(pos, n_blocks)
        if epoch not in cache:
            cache[epoch] = epoch_order(n_blocks, seed, epoch)
        out.append(int(cache[epoch][offset]))
    return out
