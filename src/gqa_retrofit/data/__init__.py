"""One data loader for calibration, training and evaluation.

Sources are local files (.txt/.md, .jsonl/.json and .parquet with a text column), directories,
globs, local dataset repositories and Hub datasets (``datasets.load_dataset`` with config,
split and revision). :func:`sample_windows` spreads windows over *all* sources (seeded), and
every run keeps a :class:`DataRecord` of exactly what it used.
"""

from __future__ import annotations

from .documents import iter_documents, read_text, source_documents
from .options import DataOptions
from .record import DataRecord, FileRecord, SourceRecord, file_sha256
from .sources import SUPPORTED, DataFile, DataSource, local_files, resolve_source, resolve_sources
from .windows import TokenSample, sample_windows

__all__ = [
    "SUPPORTED",
    "DataFile",
    "DataOptions",
    "DataRecord",
    "DataSource",
    "FileRecord",
    "SourceRecord",
    "TokenSample",
    "file_sha256",
    "iter_documents",
    "local_files",
    "read_text",
    "resolve_source",
    "resolve_sources",
    "sample_windows",
    "source_documents",
]
