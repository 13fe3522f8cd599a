"""``gqa-retrofit convert`` and ``verify`` through the real entry point."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gqa_retrofit.cli.main import main
from tiny_models import save_tiny_model


def _cli(*args: str, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")

    def limit() -> None:  # a file-size limit makes write() fail with EFBIG, like a full disk
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "gqa_retrofit.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("cli") / "src", "llama")


def test_convert_json_then_verify(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "--quiet",
                "convert",
                str(src),
                str(out),
                "--kv-heads",
                "1",
                "--dtype",
                "bf16",
                "--max-shard-size",
                "100KB",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["kv_heads"] == {"before": 2, "after": 1}
    assert report["heads"] == {"before": 4, "after": 4}
    assert report["method"] == "mean" and report["model_type"] == "llama"
    assert report["files"] == {
        p.name: {"tensors": report["files"][p.name]["tensors"], "bytes": p.stat().st_size}
        for p in out.glob("*.safetensors")
    }
    assert len(report["files"]) > 1
    assert main(["--quiet", "verify", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", name]
        for name in ("manifest", "hashes", "shards", "config", "shapes", "finite", "forward")
    ]


def test_bad_input_is_one_line_exit_2(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(src), str(tmp_path / "o"), "--kv-heads", "3"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "gqa-retrofit convert: error: kv_heads=3 exceeds the source's 2 KV heads; valid: 1, 2\n"
    )
    assert main(["verify", str(src)]) == 2
    assert "has no gqa_retrofit.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_verify_failure_exits_2_naming_the_problem(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    out = tmp_path / "out"
    assert main(["--quiet", "convert", str(src), str(out), "--kv-heads", "1"]) == 0
    tensors = load_file(out / "model.safetensors")
    tensors["model.norm.weight"][0] = float("nan")
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()
    assert main(["--quiet", "verify", str(out), "--no-load"]) == 2
    captured = capsys.readouterr()
    assert "FAIL  finite    model.norm.weight has NaN or Inf" in captured.out
    assert captured.err.count("\n") == 1 and "failed verification" in captured.err


def test_disk_full_cleans_up_and_says_so(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    size = (src / "model.safetensors").stat().st_size
    result = _cli(
        "--quiet", "convert", str(src), str(out), "--kv-heads", "2", limit_file_bytes=size // 3
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "gqa-retrofit convert: error: no space left while writing 'model.safetensors'"
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no OUT, no temp sibling
    assert main(["--quiet", "convert", str(src), str(out), "--kv-heads", "2"]) == 0  # rerun
    name = "model.layers.0.self_attn.k_proj.weight"
    assert torch.equal(
        load_file(out / "model.safetensors")[name], load_file(src / "model.safetensors")[name]
    )
