"""Turn what a user typed (``--data``, ``--calibration``, ``eval --data``) into data sources.

One spec is one source: a file, a directory (every supported file inside, recursively, hidden
ones skipped), a glob, a local dataset repository (a directory whose ``README.md`` declares
``configs:`` or ``dataset_info:`` in its YAML header, read with ``datasets.load_dataset``), or a
Hub dataset id (``owner/name`` or a canonical ``name``). Windows are later spread over *all*
sources, so a list of four novels calibrates on four novels.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .options import DataOptions

# file suffix -> reader (see documents.py)
FILE_KINDS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}
SUPPORTED = ".txt, .text, .md, .jsonl, .json, .parquet"
_GLOB_CHARS = frozenset("*?[")
_CARD_KEYS = ("configs:", "dataset_info:")


@dataclass(frozen=True)
class DataFile:
    """One local file of a source: where it is, how it is named in records, how it is read."""

    path: Path
    name: str  # relative to the source's root (never an absolute path)
    kind: str  # "text", "json" or "parquet"


@dataclass(frozen=True)
class DataSource:
    """One resolved spec.

    Attributes:
        spec: the spec as given.
        name: how records name it: a relative path as given, a path relative to the working
            directory, or the last path component; a Hub id as given.
        kind: ``files`` (local files), ``local-dataset`` (a dataset repository directory) or
            ``hub`` (a Hub dataset id).
        files: the local files (for ``local-dataset``: its data files, for the record only).
        dataset: what ``datasets.load_dataset`` is given (a Hub id or a directory).
    """

    spec: str
    name: str
    kind: str
    files: tuple[DataFile, ...] = ()
    dataset: str | None = None

    @property
    def is_dataset(self) -> bool:
        return self.kind in ("hub", "local-dataset")

    def dataset_fields(
        self, options: DataOptions, commit: str | None = None
    ) -> dict[str, str | None] | None:
        """What identifies a dataset source in records (None for local files)."""
        if not self.is_dataset:
            return None
        return {
            "id": self.name,
            "config": options.dataset_config,
            "split": options.dataset_split,
            "revision": options.dataset_revision if self.kind == "hub" else None,
            "commit": commit,
        }


def record_name(path: Path, spec: str) -> str:
    """A name for records that never leaks an absolute local path."""
    if not os.path.isabs(os.path.expanduser(spec)) and not spec.startswith("~"):
        return spec
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name or str(path)


def _looks_like_hub_id(spec: str) -> bool:
    return (
        spec.count("/") <= 1
        and not spec.startswith((".", "/", "~"))
        and not spec.endswith("/")
        and not Path(spec).suffix
        and not (_GLOB_CHARS & set(spec))
        and bool(spec.strip())
    )


def is_dataset_repo(directory: Path) -> bool:
    """A directory laid out as a dataset repository: its README.md declares configs/info."""
    card = directory / "README.md"
    if not card.is_file():
        return False
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return False
    header = text[3:].split("\n---", 1)[0]
    return any(line.startswith(_CARD_KEYS) for line in header.splitlines())


def _file_kind(path: Path) -> str:
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"data file {path.name!r} has an unsupported type {path.suffix.lower() or '(none)'!r}:"
            f" use {SUPPORTED}"
        )
    return kind


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _dir_files(root: Path, *, data_only: bool) -> list[DataFile]:
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not _visible(path, root):
            continue
        kind = FILE_KINDS.get(path.suffix.lower())
        if kind is None or (data_only and path.name == "README.md"):
            continue
        files.append(DataFile(path, path.relative_to(root).as_posix(), kind))
    return files


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS & set(p))]]
    return Path(*fixed) if fixed else Path(".")


def resolve_source(spec: str | os.PathLike[str]) -> DataSource:
    """Resolve one spec.

    Raises:
        DataError: the path does not exist, a glob matches no files, a directory holds no
            supported file, or a file has an unsupported type (each names the spec and what
            would be valid).
    """
    spec = os.fspath(spec)
    if not spec.strip():
        raise DataError("a data source is an empty string: give a file, directory, glob or id")
    path = Path(spec).expanduser()
    if path.is_dir():
        name = record_name(path, spec)
        if is_dataset_repo(path):
            files = tuple(_dir_files(path, data_only=True))
            return DataSource(spec, name, "local-dataset", files, dataset=str(path))
        files = tuple(_dir_files(path, data_only=False))
        if not files:
            raise DataError(f"data directory {spec!r} holds no {SUPPORTED} files")
        return DataSource(spec, name, "files", files)
    if path.is_file():
        return DataSource(
            spec, record_name(path, spec), "files", (DataFile(path, path.name, _file_kind(path)),)
        )
    if _GLOB_CHARS & set(spec):
        expanded = os.path.expanduser(spec)
        matches = [Path(m) for m in sorted(glob.glob(expanded, recursive=True))]
        matches = [m for m in matches if m.is_file()]
        if not matches:
            raise DataError(f"data glob {spec!r} matches no files")
        root = _glob_root(expanded)
        found: list[DataFile] = []
        for match in matches:
            try:
                rel = match.relative_to(root).as_posix()
            except ValueError:
                rel = match.name
            found.append(DataFile(match, rel, _file_kind(match)))
        name = (
            spec
            if not os.path.isabs(expanded)
            else f"{root.name}/{Path(expanded).relative_to(root)}"
        )
        return DataSource(spec, name, "files", tuple(found))
    if _looks_like_hub_id(spec):
        return DataSource(spec, spec, "hub", dataset=spec)
    if path.suffix.lower() in FILE_KINDS:
        raise DataError(f"data file {spec!r} does not exist")
    raise DataError(
        f"data {spec!r} does not exist: give an existing file ({SUPPORTED}), directory or glob, "
        "or a Hub dataset id (owner/name)"
    )


def resolve_sources(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[DataSource]:
    """Resolve every spec (a single spec is accepted too), in order.

    Raises:
        DataError: no spec, or any spec fails (see :func:`resolve_source`).
    """
    items = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    if not items:
        raise DataError("no data sources given: give at least one file, directory, glob or id")
    return [resolve_source(s) for s in items]


def local_files(specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> set[Path]:
    """Resolved local files behind ``specs`` (Hub ids contribute nothing)."""
    return {f.path.resolve() for source in resolve_sources(specs) for f in source.files}
