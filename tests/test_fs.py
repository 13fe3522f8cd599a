"""_fs.atomic_output_dir: atomic final step, what --overwrite may replace, locks, stale temps."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gqa_retrofit import _fs
from gqa_retrofit._fs import OUTPUT_MARKER, atomic_output_dir, rename_noreplace
from gqa_retrofit.errors import OutputExistsError


def _write(out: Path, overwrite: bool = False, text: str = "new") -> None:
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        (tmp / "weights.txt").write_text(text)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_output_carries_the_marker_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    _write(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OUTPUT_MARKER, "weights.txt"]
    marker = json.loads((tmp_path / "out" / OUTPUT_MARKER).read_text())
    assert marker == {"format": "gqa-retrofit-output", "target": "out"}
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_our_output_and_an_empty_directory(tmp_path: Path) -> None:
    _write(tmp_path / "out", text="first")
    _write(tmp_path / "out", overwrite=True, text="second")
    assert (tmp_path / "out" / "weights.txt").read_text() == "second"
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "empty", overwrite=True)
    assert (tmp_path / "empty" / "weights.txt").read_text() == "new"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["user dir", "file", "fifo", "symlink", "device"])
def test_overwrite_refuses_what_this_tool_did_not_write(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    if kind == "user dir":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
        what = "a directory of files not written by gqa-retrofit"
    elif kind == "file":
        out.write_text("data")
        what = "a file"
    elif kind == "fifo":
        os.mkfifo(out)
        what = "a fifo"
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
        what = "a symbolic link"
    else:
        try:
            os.mknod(out, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root")
        what = "a character device"
    before = out.lstat()
    with pytest.raises(OutputExistsError) as info:
        _write(out, overwrite=True)
    assert str(info.value) == (
        f"output {str(out)!r} is {what}: --overwrite replaces only an empty directory or an "
        "output of gqa-retrofit; move it away yourself or choose another output"
    )
    assert out.lstat().st_ino == before.st_ino and out.lstat().st_mode == before.st_mode
    if kind == "user dir":
        assert (out / "thesis.tex").read_text() == "years of work"
    assert [n for n in _leftovers(tmp_path) if n != "elsewhere"] == []


def test_a_directory_created_at_out_during_the_run_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    expected = "appeared while this run was writing it"
    with pytest.raises(OutputExistsError, match=expected), atomic_output_dir(out) as tmp:
        (tmp / "weights.txt").write_text("ours")
        out.mkdir()
        (out / "mine.txt").write_text("user")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert _leftovers(tmp_path) == []


def test_overwrite_keeps_a_user_directory_that_replaced_our_output_meanwhile(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _write(out, text="first")
    refused = pytest.raises(OutputExistsError, match="a directory of files not written")
    with refused, atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "weights.txt").write_text("second")
        (out / OUTPUT_MARKER).unlink()  # the user reuses the directory for their files
        (out / "weights.txt").write_text("user's now")
    assert (out / "weights.txt").read_text() == "user's now"
    assert _leftovers(tmp_path) == []


def test_a_second_writer_of_the_same_output_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        with pytest.raises(OutputExistsError, match="being written by another gqa-retrofit"):
            _write(out)
        (tmp / "weights.txt").write_text("first")
    assert (out / "weights.txt").read_text() == "first"
    with pytest.raises(OutputExistsError, match="already exists: pass --overwrite"):
        _write(out)
    assert _leftovers(tmp_path) == []


def test_stale_temporary_directories_of_this_output_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        stale = tmp_path / (tmp.name[:-8] + "deadbeef")
        stale.mkdir()
        (stale / OUTPUT_MARKER).write_text(json.dumps({"target": "out"}))
        (stale / "model.safetensors").write_bytes(b"x" * 1000)
        foreign = tmp_path / (tmp.name[:-8] + "0ther0ne")
        foreign.mkdir()  # same name pattern, no marker: not ours, kept
        raise RuntimeError("killed")
    assert _leftovers(tmp_path) == sorted([stale.name, foreign.name])
    _write(out)
    assert _leftovers(tmp_path) == [foreign.name]


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        _write(tmp_path / "out")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "out" / "weights.txt").stat().st_mode) == 0o640


def test_long_names_keep_temporary_names_within_the_limit(tmp_path: Path) -> None:
    out = tmp_path / ("m" * 250)
    _write(out)
    assert (out / "weights.txt").read_text() == "new"


def test_rename_noreplace_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()  # empty: a plain rename would silently replace it
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").is_dir()


def test_fallback_without_renameat2_still_refuses_and_replaces_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fs, "_renameat2", lambda src, dst, flags: False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    _write(tmp_path / "out", text="first")
    _write(tmp_path / "out", overwrite=True, text="second")
    assert (tmp_path / "out" / "weights.txt").read_text() == "second"
    assert [n for n in _leftovers(tmp_path)] == []


def test_sigterm_inside_the_block_removes_the_temporary_directory(tmp_path: Path) -> None:
    import signal

    with pytest.raises(SystemExit) as info, atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "weights.txt").write_text("partial")
        os.kill(os.getpid(), signal.SIGTERM)
    assert info.value.code == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
