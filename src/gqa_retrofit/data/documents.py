"""Read the documents of a source: one per text file, one per row of a .jsonl/.json/.parquet
file or of a dataset (Hub or local repository, streamed through ``datasets``).

Blank documents are skipped. A missing text column is an error naming the file (or dataset)
and the columns it has; a column that holds something other than text is an error too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import DataError
from .options import DataOptions
from .sources import DataFile, DataSource, resolve_sources


def _missing_column(what: str, column: str, columns: Sequence[str]) -> DataError:
    return DataError(
        f"{what} has no column {column!r}; columns: {', '.join(sorted(columns)) or '(none)'} "
        "(choose one with --text-column)"
    )


def _text_of(value: Any, what: str, column: str) -> str | None:
    if value is None or isinstance(value, str):
        return value if value and value.strip() else None
    raise DataError(
        f"column {column!r} of {what} holds {type(value).__name__} values, not text; "
        "choose a text column with --text-column"
    )


def _json_rows(data_file: DataFile) -> Iterator[Any]:
    path = data_file.path
    with path.open(encoding="utf-8", errors="replace") as f:
        first = ""
        while not first:
            char = f.read(1)
            if not char:
                return
            first = char.strip()
        f.seek(0)
        if first == "[":  # a JSON array of objects
            try:
                rows = json.load(f)
            except json.JSONDecodeError as err:
                raise DataError(f"data file {data_file.name!r} is not valid JSON: {err}") from None
            yield from rows
            return
        for number, line in enumerate(f, 1):  # JSON lines
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"data file {data_file.name!r} line {number} is not valid JSON: {err.msg}"
                ) from None


def file_documents(source: DataSource, data_file: DataFile, column: str) -> Iterator[str]:
    what = f"data file {data_file.name!r}" + (
        f" of {source.name!r}" if source.name != data_file.name else ""
    )
    if data_file.kind == "text":
        content = data_file.path.read_text(encoding="utf-8", errors="replace")
        if content.strip():
            yield content
        return
    if data_file.kind == "json":
        for row in _json_rows(data_file):
            if not isinstance(row, dict):
                raise DataError(
                    f"{what} holds a {type(row).__name__} where an object with a {column!r} "
                    "field was expected"
                )
            if column not in row:
                raise _missing_column(what, column, list(row))
            text = _text_of(row[column], what, column)
            if text is not None:
                yield text
        return
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(data_file.path)
    except Exception as err:  # pyarrow raises ArrowInvalid (a ValueError) and OSError kinds
        raise DataError(f"{what} is not a readable parquet file: {err}") from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise _missing_column(what, column, names)
    for batch in parquet.iter_batches(columns=[column], batch_size=1024):
        for value in batch.column(0).to_pylist():
            text = _text_of(value, what, column)
            if text is not None:
                yield text


def _clean(message: str, token: str | bool | None) -> str:
    line = (message.strip().splitlines() or ["no details"])[0]
    if isinstance(token, str) and token:
        line = line.replace(token, "***")
    return line


def dataset_documents(
    source: DataSource, options: DataOptions, token: str | bool | None
) -> Iterator[str]:
    from datasets import load_dataset

    kind = "Hub dataset" if source.kind == "hub" else "dataset repository"
    what = f"{kind} {source.name!r}"
    kwargs: dict[str, Any] = {"split": options.dataset_split, "streaming": True}
    if options.dataset_config is not None:
        kwargs["name"] = options.dataset_config
    if source.kind == "hub":
        kwargs["revision"] = options.dataset_revision
        kwargs["token"] = token
    try:
        dataset: Any = load_dataset(source.dataset, **kwargs)
        rows = iter(dataset)
        first = next(rows, None)
    except DataError:
        raise
    except Exception as err:  # datasets raises many kinds (ValueError, ConnectionError, ...)
        raise DataError(
            f"cannot read {what} (config {options.dataset_config!r}, split "
            f"{options.dataset_split!r}): {type(err).__name__}: {_clean(str(err), token)}"
        ) from None
    if first is None:
        return
    column = options.text_column
    if column not in first:
        raise _missing_column(what, column, list(first))
    text = _text_of(first[column], what, column)
    if text is not None:
        yield text
    for row in rows:
        text = _text_of(row.get(column), what, column)
        if text is not None:
            yield text


def hub_commit(source: DataSource, options: DataOptions, token: str | bool | None) -> str | None:
    """The commit a Hub dataset's revision resolves to (None when it cannot be asked)."""
    if source.kind != "hub":
        return None
    from huggingface_hub import HfApi

    try:
        info = HfApi().dataset_info(
            str(source.dataset), revision=options.dataset_revision, token=token
        )
    except Exception:  # the data was read: a failed look-up only leaves the commit unknown
        return None
    return info.sha


def source_documents(
    source: DataSource, options: DataOptions | None = None, *, token: str | bool | None = None
) -> Iterator[str]:
    """The non-blank documents of one source, in order.

    Raises:
        DataError: the text column is missing or not text, a file is malformed, or a dataset
            cannot be loaded (the message never contains the token).
    """
    options = options or DataOptions()
    if source.is_dataset:
        yield from dataset_documents(source, options, token)
        return
    for data_file in source.files:
        yield from file_documents(source, data_file, options.text_column)


def iter_documents(
    sources: Sequence[DataSource],
    options: DataOptions | None = None,
    *,
    token: str | bool | None = None,
) -> Iterator[str]:
    """The documents of every source, source after source."""
    for source in sources:
        yield from source_documents(source, options, token=token)


def read_text(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    options: DataOptions | None = None,
    *,
    token: str | bool | None = None,
) -> str:
    """All documents of ``specs`` as one text, joined by a blank line (a .txt file: its text).

    For haystacks and other uses that want plain text; reads every document, so it is meant for
    local files and small datasets.

    Raises:
        DataError: a source is missing or unreadable, or every document is blank.
    """
    sources = resolve_sources(specs)
    documents = list(iter_documents(sources, options, token=token))
    if not documents:
        names = ", ".join(s.name for s in sources)
        raise DataError(f"data {names!r} is empty: no non-blank documents found")
    return "\n\n".join(documents)
