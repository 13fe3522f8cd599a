"""Every example states its command and runs on tiny models (in-process, like ``python X``)."""

from __future__ import annotations

import json
import runpy
import struct
import sys
from pathlib import Path

import pytest

from tiny_models import save_tiny_model

EXAMPLES = Path(__file__).parents[2] / "examples"
TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. "
) * 8


def run_example(name: str, *args: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``examples/<name>`` as ``__main__`` with ``args``; it must exit with status 0."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert exit_info.value.code == 0


MINE = ["convert_llama.py", "estimate_models.py", "train_fsdp.py", "push_with_card.py"]


@pytest.mark.parametrize("name", MINE)
def test_every_example_states_its_command(name: str) -> None:
    path = EXAMPLES / name
    doc = path.read_text(encoding="utf-8").split('"""')[1]
    assert "Command" in doc and f"examples/{path.name}" in doc


def test_convert_llama(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_tiny_model(tmp_path / "src", "llama")
    out = tmp_path / "out"
    run_example("convert_llama.py", str(src), str(out), "--kv-heads", "1", monkeypatch=monkeypatch)
    assert json.loads((out / "config.json").read_text())["num_key_value_heads"] == 1
    assert "KV heads 2 -> 1, KV cache 256 -> 128 bytes/token (bf16), verified" in (
        capsys.readouterr().out
    )


def test_convert_llama_reports_a_failed_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gqa_retrofit.conversion import verify

    real_verify = verify.verify_checkpoint

    def verify_after_damage(directory: str, **kwargs: object) -> verify.VerifyReport:
        weights = Path(directory) / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-4:] = struct.pack("<f", float("nan"))  # the last fp32 value, after conversion
        weights.write_bytes(bytes(data))
        return real_verify(directory, **kwargs)

    monkeypatch.setattr(verify, "verify_checkpoint", verify_after_damage)
    src = save_tiny_model(tmp_path / "src", "llama")
    monkeypatch.setattr(sys, "argv", ["convert_llama.py", str(src), str(tmp_path / "o")])
    sys.argv += ["--kv-heads", "1"]
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / "convert_llama.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 1
    assert "FAILED verification: " in out and "verified" not in out
    assert any(line.startswith("FAIL") for line in out.splitlines())


def test_estimate_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = save_tiny_model(tmp_path / "a", "llama", with_tokenizer=False)
    b = save_tiny_model(tmp_path / "b", "qwen3", with_tokenizer=False)
    plot = tmp_path / "costs.png"
    run_example(
        "estimate_models.py",
        str(a),
        str(b),
        "--context",
        "1024,4096",
        "--what-if",
        "4:1",
        "--plot",
        str(plot),
        monkeypatch=monkeypatch,
    )
    out = capsys.readouterr().out
    # tiny llama: 2 layers * 2 (K, V) * 2 KV heads * 16 * 2 bytes = 256 B/token, 1,024 tokens
    assert f"context   1,024: KV cache {256 * 1024 / 2**30:8.3f} GiB" in out
    assert len([line for line in out.splitlines() if "context" in line]) == 8
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_train_fsdp_single_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = save_tiny_model(tmp_path / "teacher", "llama")
    student = save_tiny_model(tmp_path / "student", "llama", seed=1, num_key_value_heads=1)
    data = tmp_path / "data.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    run_example(
        "train_fsdp.py",
        str(student),
        str(out),
        "--teacher",
        str(teacher),
        "--train-data",
        str(data),
        "--train-steps",
        "2",
        "--seq-len",
        "32",
        "--batch-size",
        "2",
        monkeypatch=monkeypatch,
    )
    assert "trained 2 steps (128 tokens)" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file()


def test_push_with_card(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hub_server: object,
) -> None:
    from gqa_retrofit.conversion.convert import convert_checkpoint

    src = save_tiny_model(tmp_path / "src", "llama")
    out = tmp_path / "converted"
    convert_checkpoint(str(src), out, kv_heads=1)
    run_example("push_with_card.py", str(out), "tester/tiny-kv1", monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert f"card: {out / 'README.md'}" in printed
    assert printed.splitlines()[-1].startswith("pushed: http://127.0.0.1:")
    assert printed.splitlines()[-1].endswith("/tester/tiny-kv1")
