"""Filesystem rules that hold everywhere: never write into a source, outputs appear atomically.

:func:`atomic_output_dir` writes an output directory ``OUT`` into a temporary sibling and moves
it into place at the end, so ``OUT`` is either untouched or complete:

- a lock file next to ``OUT`` (``.NAME.gqa-lock``, ``flock``) is held for the whole run: a
  second run into the same ``OUT`` is refused at once (exit 2) instead of racing;
- the final move is a no-replace rename (``renameat2(RENAME_NOREPLACE)``; elsewhere a rename
  that can only replace an empty directory), so whatever appeared at ``OUT`` meanwhile is kept;
- ``overwrite`` replaces only an empty directory or one this tool wrote (it carries the marker
  file :data:`OUTPUT_MARKER`, a conversion manifest or a training-run marker), by an atomic
  exchange where the kernel has one; anything else (a user's directory, a file, a fifo, a
  device node, a symbolic link) is refused with exit 2;
- temporary directories left by a killed run (``kill -9``) are removed by the next run into the
  same ``OUT``; SIGTERM is turned into an exception so the run cleans up itself;
- directories and files are created with the process umask, like any other tool's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputExistsError

OUTPUT_MARKER = ".gqa-retrofit-output.json"
MARKER_FORMAT = "gqa-retrofit-output"
# Files whose presence (with the right "format") also marks a directory as written by this tool.
_OWNED_BY = {"gqa_retrofit.json": "gqa-retrofit-conversion", "training_state.json": None}
_TMP_TAG = ".gqa-tmp-"
_LOCK_TAG = ".gqa-lock"
_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def check_output_location(
    out: str | os.PathLike[str], *, source: str | os.PathLike[str] | None, overwrite: bool
) -> Path:
    """Validate an output directory before any work starts.

    With ``overwrite`` an existing ``out`` is not checked here (callers such as ``train`` apply
    their own rules); :func:`check_replaceable_output` is the check of ``--overwrite``.

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
    if os.path.lexists(out_path) and not overwrite:
        raise OutputExistsError(
            f"output {str(out)!r} already exists: pass --overwrite (overwrite=True) to replace it"
        )
    return out_path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a fifo"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a directory"


def _is_ours(directory: Path) -> bool:
    """Whether ``directory`` (a real directory) was written by gqa-retrofit."""
    for name, fmt in [(OUTPUT_MARKER, MARKER_FORMAT), *_OWNED_BY.items()]:
        path = directory / name
        try:
            if not stat.S_ISREG(path.lstat().st_mode) or path.lstat().st_size > 16 * 1024**2:
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and str(data.get("format", "")).startswith(
            fmt or "gqa-retrofit-"
        ):
            return True
    return False


def replace_problem(out: str | os.PathLike[str]) -> str | None:
    """Why ``--overwrite`` may not replace ``out`` (None: it may, or nothing is there)."""
    path = Path(out)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(mode):
        what = _kind(mode)
    elif not any(path.iterdir()) or _is_ours(path):
        return None
    else:
        what = "a directory of files not written by gqa-retrofit"
    return (
        f"output {str(out)!r} is {what}: --overwrite replaces only an empty directory or an "
        "output of gqa-retrofit; move it away yourself or choose another output"
    )


def check_replaceable_output(
    out: str | os.PathLike[str], *, source: str | os.PathLike[str] | None, overwrite: bool
) -> Path:
    """:func:`check_output_location`, and with ``overwrite`` that ``out`` may be replaced.

    Raises:
        OutputExistsError: see :func:`check_output_location`, or ``out`` is something
            ``--overwrite`` must not replace (see :func:`replace_problem`).
    """
    out_path = check_output_location(out, source=source, overwrite=overwrite)
    problem = replace_problem(out) if overwrite else None
    if problem:
        raise OutputExistsError(problem)
    return out_path


# -- renames that never clobber ------------------------------------------------------------------


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False when libc, kernel or filesystem lack it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with :class:`FileExistsError` if ``dst`` exists.

    Without ``renameat2`` the check and the rename are two steps; a POSIX rename of a directory
    can then only replace an empty directory, never files.
    """
    try:
        if _renameat2(src, dst, _RENAME_NOREPLACE):
            return
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        raise
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)


def _swap_in(tmp: Path, out: Path, trash: Path) -> Path:
    """Put ``tmp`` at ``out``; return where the previous ``out`` now is (to delete)."""
    if _renameat2(tmp, out, _RENAME_EXCHANGE):
        return tmp  # atomic: ``out`` never missing, the old content now sits at ``tmp``
    os.rename(out, trash)
    try:
        rename_noreplace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            rename_noreplace(trash, out)
        raise
    return trash


# -- the output directory ------------------------------------------------------------------------


def _short(name: str) -> str:
    """``name``, or a bounded stand-in, so ``.{short}.gqa-tmp-…`` fits a 255-byte file name."""
    if len(name.encode()) <= 120:
        return name
    return name[:60] + "~" + hashlib.sha256(name.encode()).hexdigest()[:12]


def _notice(message: str) -> None:
    from ._progress import is_quiet

    if not is_quiet():
        print(f"gqa-retrofit: {message}", file=sys.stderr)


@contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """Hold ``.NAME.gqa-lock`` next to ``out`` (flock, not blocking) for the whole block.

    Raises:
        OutputExistsError: another process holds the lock (is writing ``out``).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the no-replace rename still protects
        yield
        return
    path = out.parent / f".{_short(out.name)}{_LOCK_TAG}"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputExistsError(
                f"output {str(out)!r} is being written by another gqa-retrofit process (lock "
                f"{path.name!r}): wait for it to finish or choose another output"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed that lock file: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _remove_stale(out: Path) -> None:
    """Delete temporary directories of ``out`` left by a killed run (the lock is ours)."""
    prefix = f".{_short(out.name)}{_TMP_TAG}"
    for entry in out.parent.iterdir():
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            marker = json.loads((entry / OUTPUT_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(marker, dict) and marker.get("target") == out.name:
            shutil.rmtree(entry, ignore_errors=True)
            _notice(f"removed {entry.name!r}, left by an interrupted run into {out.name!r}")


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` inside the block (main thread, default handler)."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _finish(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Move the complete ``tmp`` to ``out`` without ever destroying what is not ours."""
    try:
        rename_noreplace(tmp, out)
        return
    except FileExistsError:
        if not overwrite:
            raise OutputExistsError(
                f"output {str(out)!r} appeared while this run was writing it: it was left "
                "untouched and this run's result discarded; choose another output"
            ) from None
    problem = replace_problem(out)
    if problem:
        raise OutputExistsError(problem)
    old = _swap_in(tmp, out, out.parent / f"{tmp.name}-old")
    if not (stat.S_ISDIR(old.lstat().st_mode) and (not any(old.iterdir()) or _is_ours(old))):
        _swap_in(old, out, tmp)  # it changed meanwhile: put it back (ours ends at ``tmp``)
        raise OutputExistsError(f"output {str(out)!r} changed while it was being replaced")
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_output_dir(
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """Yield a temporary sibling directory that is moved to ``out`` only on success.

    See the module docstring for the rules. An exception, an interrupt or SIGTERM inside the
    block removes the temporary directory; a ``kill -9`` leaves it for the next run to remove.

    Raises:
        OutputExistsError: ``out`` exists (without ``overwrite``), may not be replaced, overlaps
            ``source``, appeared during the run, or another process is writing it.
    """
    out_path = check_replaceable_output(out, source=source, overwrite=overwrite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out_path), _sigterm_raises():
        _remove_stale(out_path)
        # a run that finished while this one waited for the lock: check again under the lock
        check_replaceable_output(out, source=source, overwrite=overwrite)
        tmp = out_path.parent / f".{_short(out_path.name)}{_TMP_TAG}{uuid.uuid4().hex[:8]}"
        tmp.mkdir(mode=0o777)  # the umask applies
        try:
            write_json_atomic(
                tmp / OUTPUT_MARKER, {"format": MARKER_FORMAT, "target": out_path.name}
            )
            yield tmp
            _finish(tmp, out_path, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def final_output(directory: str | os.PathLike[str]) -> Path:
    """The output a temporary directory of :func:`atomic_output_dir` becomes (else itself)."""
    path = Path(directory)
    if _TMP_TAG in path.name:
        try:
            target = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf-8"))["target"]
            return path.parent / str(target)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return path


def portable_paths(value: Any, root: str | os.PathLike[str]) -> Any:
    """``value`` (JSON-like) with every absolute local path string made relative to ``root``.

    Outputs get published: a record naming ``/home/me/...`` or a cache directory leaks it.
    Relative POSIX paths (``../data/train.txt``) still say which file was used.
    """
    if isinstance(value, str):
        if value.startswith(os.sep) and "\n" not in value and len(value) < 4096:
            return os.path.relpath(value, os.path.abspath(root)).replace(os.sep, "/")
        return value
    if isinstance(value, dict):
        return {key: portable_paths(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_paths(item, root) for item in value]
    return value


_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/[^\s`'\"|()\[\]<>*,;]+")


def portable_text(text: str, root: str | os.PathLike[str]) -> str:
    """``text`` (a report, a command line) with local absolute paths made relative to ``root``.

    A path is rewritten only when its first component exists here (``/home``, ``/tmp``, ...),
    so other slashes (``tokens/s``, URLs) stay as they are.
    """

    def relative(match: re.Match[str]) -> str:
        path = match.group(0)
        first = path.split("/")[1]
        if not first or not os.path.exists("/" + first):
            return path
        return os.path.relpath(path, os.path.abspath(root)).replace(os.sep, "/")

    return _ABSOLUTE_PATH.sub(relative, text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
