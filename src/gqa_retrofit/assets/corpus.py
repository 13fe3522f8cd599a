"""The default text: Jane Austen's six novels (public domain) and a modern out-of-domain text.

Austen comes from Debian's ``r-cran-janeaustenr`` (R data files read with the pure-Python
``rdata`` package); the out-of-domain text is the Debian Administrator's Handbook (HTML from
Debian's ``debian-handbook``, stripped to text). Split by novel so evaluation text is never
trained on: train on four novels, validate on *Northanger Abbey*, test on *Persuasion*.
"""

from __future__ import annotations

import gzip
import html.parser
import os
import shutil
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import AssetError
from .cache import cache_dir
from .debian import unpack_deb

# R object name in janeaustenr -> file stem
NOVELS = {
    "sensesensibility": "sense_and_sensibility",
    "prideprejudice": "pride_and_prejudice",
    "mansfieldpark": "mansfield_park",
    "emma": "emma",
    "northangerabbey": "northanger_abbey",
    "persuasion": "persuasion",
}
TRAIN_NOVELS = ("emma", "mansfield_park", "pride_and_prejudice", "sense_and_sensibility")
VALIDATION_NOVEL = "northanger_abbey"
TEST_NOVEL = "persuasion"
_RDATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
_HANDBOOK_DIR = "usr/share/doc/debian-handbook/html/en-US"


@dataclass(frozen=True)
class Corpus:
    """Paths of the default text files, split by novel."""

    root: Path
    train: list[Path]
    validation: Path
    test: Path
    ood: Path

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "train": [str(p) for p in self.train],
            "validation": str(self.validation),
            "test": str(self.test),
            "ood": str(self.ood),
        }


def _read_r_character_vectors(data_dir: Path) -> dict[str, list[str]]:
    """Read every character vector of an R lazy-load database (``Rdata.rdx``/``.rdb``)."""
    import rdata

    def parse(raw: bytes) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns "assumed RDS" for headerless data
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = parse(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    blob = (data_dir / "Rdata.rdb").read_bytes()
    vectors: dict[str, list[str]] = {}
    for name, (offset, length) in index["variables"].items():  # type: ignore[index]
        chunk = blob[int(offset) : int(offset) + int(length)]
        expected = struct.unpack(">I", chunk[:4])[0]
        raw = zlib.decompress(chunk[4:])
        if len(raw) != expected:
            raise AssetError(f"corrupt janeaustenr data for {name!r}")
        vectors[str(name)] = [str(line) for line in parse(raw)]  # type: ignore[attr-defined]
    return vectors


class _TextExtractor(html.parser.HTMLParser):
    _SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "head", "nav"})
    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "h1", "h2", "h3", "h4", "li", "pre", "tr", "br", "section", "dt", "dd"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip() + "\n"


def _html_to_text(paths: list[Path]) -> str:
    chunks = []
    for path in paths:
        parser = _TextExtractor()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        chunks.append(parser.text())
    return "\n".join(chunks)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _build_austen(target: Path) -> None:
    root = unpack_deb("r-cran-janeaustenr")
    try:
        vectors = _read_r_character_vectors(root / _RDATA_DIR)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    missing = sorted(set(NOVELS) - set(vectors))
    if missing:
        raise AssetError(f"janeaustenr package lacks novels {missing}")
    target.mkdir(parents=True, exist_ok=True)
    for r_name, stem in NOVELS.items():
        _write_atomic(target / f"{stem}.txt", "\n".join(vectors[r_name]) + "\n")


def _build_handbook(path: Path) -> None:
    root = unpack_deb("debian-handbook")
    try:
        pages = sorted((root / _HANDBOOK_DIR).glob("*.html"))
        if not pages:
            raise AssetError("debian-handbook package has no English HTML pages")
        text = _html_to_text(pages)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, text)


def default_corpus(*, ood: bool = True) -> Corpus:
    """Fetch (once) and return the default text split.

    Args:
        ood: also fetch the out-of-domain text (Debian handbook, a 35 MB download once).

    Raises:
        AssetError: the Debian packages cannot be fetched or parsed; the message says what to
            do by hand.
    """
    root = cache_dir() / "text"
    austen = root / "austen"
    if not all((austen / f"{stem}.txt").is_file() for stem in NOVELS.values()):
        _build_austen(austen)
    handbook = root / "debian_handbook.txt"
    if ood and not handbook.is_file():
        _build_handbook(handbook)
    return Corpus(
        root=root,
        train=[austen / f"{stem}.txt" for stem in TRAIN_NOVELS],
        validation=austen / f"{VALIDATION_NOVEL}.txt",
        test=austen / f"{TEST_NOVEL}.txt",
        ood=handbook,
    )
