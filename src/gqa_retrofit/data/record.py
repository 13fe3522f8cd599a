"""The record of exactly what data a run used: per source its name (a relative path or a Hub
id), its files with sizes and SHA-256, documents and tokens read, windows and tokens taken, and
one digest of the token ids. Manifests, training states and reports store :meth:`to_dict`."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileRecord:
    name: str  # relative to its source
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path, name: str) -> FileRecord:
        return cls(name=name, bytes=path.stat().st_size, sha256=file_sha256(path))


@dataclass
class SourceRecord:
    """What one source contributed.

    Attributes:
        name: relative path as given (or relative to the working directory) or Hub id.
        kind: ``files``, ``local-dataset`` or ``hub``.
        files: the local files read (all data files of a local dataset repository).
        dataset: ``{"id", "config", "split", "revision"}`` for datasets, else None.
        documents: non-blank documents read.
        tokens_read: tokens read (scanned) from the source.
        exhausted: the whole source was read.
        windows: windows taken from this source.
        tokens: tokens taken (``windows * seq_len``).
    """

    name: str
    kind: str
    files: list[FileRecord] = field(default_factory=list)
    dataset: dict[str, str | None] | None = None
    documents: int = 0
    tokens_read: int = 0
    exhausted: bool = False
    windows: int = 0
    tokens: int = 0


def _flat_name(source: SourceRecord, file: FileRecord) -> str:
    single = len(source.files) == 1 and source.name.endswith(file.name)
    return source.name if single else f"{source.name}/{file.name}"


@dataclass
class DataRecord:
    """What a run used, source by source (see the module docstring)."""

    sources: list[SourceRecord]
    mode: str  # "sample" (seeded choice per source), "first" (leading windows), "packed" (training)
    seq_len: int
    windows: int
    tokens: int
    seed: int | None  # None when the consumer orders the data itself (training)
    text_column: str
    digest: str  # sha256 of the int64 token ids taken

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON, plus two flat views that cards read: ``files`` (every local file,
        named ``source/file``, or the source's name when it is that one file) and ``datasets``
        (the Hub dataset ids)."""
        out = asdict(self)
        out["files"] = [
            {**asdict(f), "name": _flat_name(s, f)} for s in self.sources for f in s.files
        ]
        out["datasets"] = [s.name for s in self.sources if s.kind == "hub"]
        return out

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]
