"""Filesystem rules that hold everywhere: never write into a source, outputs appear atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputExistsError


def check_output_location(
    out: str | os.PathLike[str], *, source: str | os.PathLike[str] | None, overwrite: bool
) -> Path:
    """Validate an output directory before any work starts.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is false, or ``out`` equals or lies
            inside ``source`` (or contains it).
    """
    out_path = Path(out).resolve()
    if source is not None and Path(source).exists():
        src = Path(source).resolve()
        if out_path == src or src in out_path.parents or out_path in src.parents:
            raise OutputExistsError(
                f"output {str(out)!r} overlaps the source {str(source)!r}: choose a directory "
                "outside the source checkpoint"
            )
    if out_path.exists() and not overwrite:
        raise OutputExistsError(
            f"output {str(out)!r} already exists: pass --overwrite (overwrite=True) to replace it"
        )
    return out_path


@contextmanager
def atomic_output_dir(
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """Yield a temporary sibling directory that is renamed to ``out`` only on success.

    An exception (or an interrupt) inside the block removes the temporary directory, so ``out``
    is either untouched or complete.
    """
    out_path = check_output_location(out, source=source, overwrite=overwrite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.tmp-", dir=out_path.parent))
    try:
        yield tmp
        if out_path.exists():
            trash = out_path.parent / f".{out_path.name}.old-{uuid.uuid4().hex[:8]}"
            out_path.rename(trash)
            tmp.rename(out_path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
