"""Training data: read documents through ``datasets``, tokenize, pack into fixed-length blocks.

Sources (``--data``, repeatable): plain text files, directories and globs (one document per
file), ``.jsonl``/``.json``/``.parquet`` files with a text column (one document per row), and Hub
dataset ids (streamed, read only as far as the run needs). Documents are tokenized without
special tokens and joined with the tokenizer's EOS after each one; the token stream is cut into
``seq_len`` blocks (the incomplete tail is dropped). The block order of each epoch is a
permutation drawn from ``(seed, epoch)``, so the batch of any step is known without replaying the
run: that is what makes resuming exact.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError

_TEXT_SUFFIXES = {".txt", ".text", ".md"}
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class DataSource:
    """One resolved ``--data`` entry: a ``datasets`` builder with its files, or a Hub id."""

    builder: str  # "text", "json", "parquet" or "hub"
    files: tuple[str, ...] = ()
    dataset_id: str | None = None

    def describe(self) -> str:
        return self.dataset_id or ", ".join(self.files)


@dataclass
class PackedData:
    """Token blocks ready for training.

    Attributes:
        blocks: ``[n_blocks, seq_len]`` token ids (int64).
        documents: documents read.
        fingerprint: sha256 of the block tensor (same data, tokenizer and seq_len -> same hash).
        sources: what was read, for the training record.
    """

    blocks: torch.Tensor
    documents: int
    fingerprint: str
    sources: list[str]

    @property
    def n_blocks(self) -> int:
        return int(self.blocks.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.blocks.numel())


def resolve_sources(specs: list[str]) -> list[DataSource]:
    """Turn ``--data`` entries into :class:`DataSource` objects.

    Raises:
        DataError: a path or glob matches nothing, or a file type is not supported.
    """
    sources: list[DataSource] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in _TEXT_SUFFIXES)
            if not files:
                raise DataError(f"data directory {spec!r} holds no .txt/.md files")
        elif path.is_file():
            files = [str(path)]
        elif _GLOB_CHARS & set(spec):
            files = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            files = [f for f in files if Path(f).is_file()]
            if not files:
                raise DataError(f"data glob {spec!r} matches no files")
        elif (
            spec.count("/") <= 1 and not spec.startswith((".", "/", "~")) and not Path(spec).suffix
        ):
            sources.append(DataSource("hub", dataset_id=spec))
            continue
        else:
            raise DataError(
                f"data {spec!r} is neither an existing file, directory or glob nor a Hub dataset "
                "id (owner/name)"
            )
        by_builder: dict[str, list[str]] = {}
        for f in files:
            suffix = Path(f).suffix.lower()
            builder = _BUILDERS.get(
                suffix, "text" if suffix in _TEXT_SUFFIXES or not suffix else ""
            )
            if not builder:
                raise DataError(
                    f"data file {f!r} has an unsupported type {suffix!r}: use text (.txt/.md), "
                    ".jsonl/.json or .parquet"
                )
            by_builder.setdefault(builder, []).append(str(Path(f).resolve()))
        for builder, group in by_builder.items():
            sources.append(DataSource(builder, files=tuple(group)))
    return sources


def iter_documents(sources: list[DataSource], text_column: str = "text") -> Iterator[str]:
    """Yield the documents of ``sources`` in order, streamed through ``datasets``.

    Raises:
        DataError: a source lacks ``text_column`` or cannot be read.
    """
    from datasets import load_dataset

    for source in sources:
        try:
            if source.builder == "hub":
                ds: Any = load_dataset(source.dataset_id, split="train", streaming=True)
            elif source.builder == "text":
                ds = load_dataset(
                    "text",
                    data_files=list(source.files),
                    split="train",
                    streaming=True,
                    sample_by="document",
                )
            else:
                ds = load_dataset(
                    source.builder, data_files=list(source.files), split="train", streaming=True
                )
        except DataError:
            raise
        except Exception as err:
            raise DataError(
                f"cannot read data {source.describe()!r}: {type(err).__name__}: {err}"
            ) from None
        column = "text" if source.builder == "text" else text_column
        for row in ds:
            if column not in row:
                raise DataError(
                    f"data {source.describe()!r} has no column {column!r}; columns: "
                    f"{', '.join(sorted(row))} (choose one with --text-column)"
                )
            text = row[column]
            if isinstance(text, str) and text.strip():
                yield text


def pack_documents(
    documents: Iterator[str] | list[str],
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
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no EOS token: cannot separate packed documents")
    stream: list[int] = []
    blocks: list[list[int]] = []
    n_docs = 0
    for text in documents:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        stream.extend(ids)
        stream.append(eos)
        n_docs += 1
        whole = len(stream) // seq_len
        if whole:
            blocks.extend(stream[i * seq_len : (i + 1) * seq_len] for i in range(whole))
            del stream[: whole * seq_len]
        if max_blocks is not None and len(blocks) >= max_blocks:
            blocks = blocks[:max_blocks]
            break
    tensor = (
        torch.tensor(blocks, dtype=torch.long)
        if blocks
        else torch.empty((0, seq_len), dtype=torch.long)
    )
    return tensor, n_docs


def load_packed(
    specs: list[str],
    tokenizer: Any,
    seq_len: int,
    *,
    text_column: str = "text",
    max_blocks: int | None = None,
    what: str = "training data",
) -> PackedData:
    """Resolve, read, tokenize and pack ``specs``.

    Raises:
        DataError: no documents, or fewer tokens than one block of ``seq_len``.
    """
    sources = resolve_sources(specs)
    limit = max_blocks if any(s.builder == "hub" for s in sources) else None
    blocks, n_docs = pack_documents(
        iter_documents(sources, text_column), tokenizer, seq_len, max_blocks=limit
    )
    if n_docs == 0:
        raise DataError(f"{what} {', '.join(specs)!r} is empty: no non-blank documents found")
    if blocks.shape[0] == 0:
        raise DataError(
            f"{what} {', '.join(specs)!r} is shorter than one block of {seq_len} tokens: "
            "add text or lower --seq-len"
        )
    digest = hashlib.sha256(blocks.numpy().tobytes()).hexdigest()
    return PackedData(blocks, n_docs, digest, [s.describe() for s in sources])


def source_files(specs: list[str]) -> set[str]:
    """Resolved local files behind ``specs`` (Hub ids contribute nothing)."""
    out: set[str] = set()
    for source in resolve_sources(specs):
        out.update(source.files)
    return out


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
