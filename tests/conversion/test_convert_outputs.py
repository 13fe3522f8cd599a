"""convert's output under faults: kill -9, two runs into one OUT, a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gqa_retrofit import _fs
from gqa_retrofit.cli.main import main
from gqa_retrofit.conversion import streaming
from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.conversion.verify import verify_checkpoint
from gqa_retrofit.errors import ConversionError
from tiny_models import save_tiny_model

PAUSED = Path(__file__).with_name("_paused_convert.py")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "src", "llama")


def _start(tmp_path: Path, tag: str, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    ready, go = tmp_path / f"{tag}.ready", tmp_path / f"{tag}.go"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GQA_RETROFIT_QUIET": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(PAUSED), str(ready), str(go), "--", *args],
        env=env,
        stderr=subprocess.PIPE,
    )
    return proc, ready, go


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        assert time.monotonic() < deadline, "the conversion never reached its final step"
        time.sleep(0.05)


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_conversion_killed_with_sigkill_leaves_nothing_after_the_rerun(
    src: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "outs"
    out = parent / "out"
    proc, ready, _ = _start(tmp_path, "a", "convert", str(src), str(out), "--kv-heads", "1")
    _wait_for(ready, proc)
    temp = parent / ready.read_text()
    assert (temp / "model.safetensors").stat().st_size > 100_000  # killed with a full result
    proc.kill()
    assert proc.wait(60) == -signal.SIGKILL
    assert not out.exists() and temp.is_dir()  # kill -9 cannot clean up; the next run does
    assert main(["-q", "convert", str(src), str(out), "--kv-heads", "1"]) == 0
    assert _hidden(parent) == []
    assert verify_checkpoint(out, load=False).ok


def test_two_conversions_into_one_output_one_wins_the_other_exits_2(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "outs" / "out"
    at_final_step, go = threading.Event(), threading.Event()
    real_finish = _fs._finish

    def paused_finish(tmp: Path, final: Path, *, overwrite: bool) -> None:
        at_final_step.set()
        assert go.wait(120)
        real_finish(tmp, final, overwrite=overwrite)

    monkeypatch.setattr(_fs, "_finish", paused_finish)
    codes: list[int] = []
    first = threading.Thread(
        target=lambda: codes.append(main(["-q", "convert", str(src), str(out), "--kv-heads", "1"]))
    )
    first.start()
    assert at_final_step.wait(120)
    monkeypatch.setattr(_fs, "_finish", real_finish)
    assert main(["-q", "convert", str(src), str(out), "--kv-heads", "2"]) == 2
    assert "is being written by another gqa-retrofit process" in capsys.readouterr().err
    go.set()
    first.join(120)
    assert codes == [0]
    assert verify_checkpoint(out, load=False).ok
    assert _hidden(out.parent) == []
    manifest = json.loads((out / "gqa_retrofit.json").read_text())
    assert manifest["heads"]["after"]["kv_heads"] == 1  # the winner's result, complete
    assert main(["-q", "convert", str(src), str(out), "--kv-heads", "2"]) == 2  # exists now


def _full_disk_message(out: Path) -> str:
    return f"no space left while writing 'model.safetensors' for {str(out)!r}"


def test_disk_full_on_a_small_tmpfs_is_the_clear_error(src: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the fault-injection test below still runs)")
    try:
        out = mnt / "out"
        with pytest.raises(ConversionError) as info:
            convert_checkpoint(src, out, kv_heads=1)
        assert str(info.value).startswith(_full_disk_message(out))
        assert "No space left on device" in str(info.value)
        assert sorted(os.listdir(mnt)) == []  # nothing half-written left behind
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_in_the_middle_of_a_copy_is_the_clear_error(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = [0]
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if written[0] > 50_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written[0] += len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(streaming.os, "pwrite", pwrite)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(src, out, kv_heads=1)
    assert str(info.value).startswith(_full_disk_message(out))
    assert sorted(os.listdir(tmp_path)) == ["src"]
