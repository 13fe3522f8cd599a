"""One data loader for calibration, training and evaluation.

Sources are local files (.txt/.md, .jsonl/.json and .parquet with a text column), directories,
globs, local dataset repositories and Hub datasets (``datasets.load_dataset`` with config,
split and revision). :func:`sample_windows` spreads windows over *all* sources (seeded), and
every run keeps a :class:`DataRecord` of exactly what it used.

Names are imported lazily, so that :class:`DataOptions` (the CLI builds flags from it) does not
pull in torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "iter_documents": "documents",
    "read_text": "documents",
    "source_documents": "documents",
    "DataOptions": "options",
    "DataRecord": "record",
    "FileRecord": "record",
    "SourceRecord": "record",
    "file_sha256": "record",
    "SUPPORTED": "sources",
    "DataFile": "sources",
    "DataSource": "sources",
    "local_files": "sources",
    "resolve_source": "sources",
    "resolve_sources": "sources",
    "TokenSample": "windows",
    "sample_windows": "windows",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
