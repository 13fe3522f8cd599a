"""Hostile inputs to convert, eval and bench: exit 2 with one line naming the value (issue 15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gqa_retrofit.cli.main import main
from tiny_models import save_tiny_model

TEXT = "It is a truth universally acknowledged, that a single man in want of a wife. " * 40


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    llama = save_tiny_model(root / "llama", "llama")
    gpt2 = save_tiny_model(root / "gpt2", "gpt2")
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return {"root": root, "llama": llama, "gpt2": gpt2, "text": text}


def _copy_with(models: dict[str, Path], name: str, **config: Any) -> Path:
    target = models["root"] / name
    if not target.exists():
        shutil.copytree(models["llama"], target)
        values = json.loads((target / "config.json").read_text(encoding="utf-8"))
        values.update(config)
        (target / "config.json").write_text(json.dumps(values), encoding="utf-8")
    return target


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"num_attention_heads": 0}, "'num_attention_heads' (number of attention heads) must be "
         "an integer >= 1, got 0"),
        ({"num_attention_heads": "eight"}, "must be an integer >= 1, got 'eight'"),
        ({"head_dim": -1}, "config field 'head_dim' (head_dim) must be an integer >= 1, got -1"),
    ],
)  # fmt: skip
def test_bad_configs_are_read_as_estimate_reads_them(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    message: str,
) -> None:
    bad = _copy_with(models, "bad-" + "-".join(f"{k}{v}" for k, v in config.items()), **config)
    err = _one_line_error(capsys, ["convert", str(bad), str(tmp_path / "o"), "--kv-heads", "1"])
    assert err.startswith("gqa-retrofit convert: error: config field") and message in err
    err = _one_line_error(capsys, ["eval", str(bad), "--eval-data", str(models["text"])])
    assert err.startswith("gqa-retrofit eval: error: config field") and message in err
    argv = ["retrofit", str(bad), str(tmp_path / "o"), "--kv-heads", "1", "--method", "mean"]
    err = _one_line_error(capsys, argv)
    assert err.startswith("gqa-retrofit retrofit: error: config field") and message in err
    assert not (tmp_path / "o").exists()


def test_eval_window_beyond_the_position_limit(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for family in ("llama", "gpt2"):  # gpt2's learned positions used to raise an IndexError
        argv = ["eval", str(models[family]), "--eval-data", str(models["text"])]
        err = _one_line_error(capsys, [*argv, "--eval-seq-len", "300"])
        assert err == (
            f"gqa-retrofit eval: error: --eval-seq-len 300 is beyond the position limit of "
            f"{str(models[family])!r} (256 tokens): choose at most 256"
        )
        out = str(models["root"] / "never-written")
        argv = ["retrofit", str(models[family]), out, "--kv-heads", "1", "--method", "mean"]
        err = _one_line_error(
            capsys, [*argv, "--eval-data", str(models["text"]), "--eval-seq-len", "300"]
        )
        assert err == (
            f"gqa-retrofit retrofit: error: --eval-seq-len 300 is beyond the position limit of "
            f"{str(models[family])!r} (256 tokens): choose at most 256"
        )
        assert not Path(out).exists()


def test_weights_that_are_a_directory(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(models["llama"], broken)
    (broken / "model.safetensors").unlink()
    (broken / "model.safetensors").mkdir()
    expected = (
        f"{str(broken / 'model.safetensors')!r} is a directory: a checkpoint's weights, index "
        "and configs must be regular files"
    )
    err = _one_line_error(capsys, ["convert", str(broken), str(tmp_path / "o"), "--kv-heads", "1"])
    assert err == f"gqa-retrofit convert: error: {expected}"
    err = _one_line_error(capsys, ["eval", str(broken), "--eval-data", str(models["text"])])
    assert err == f"gqa-retrofit eval: error: {expected}"


def test_long_output_names(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fits = tmp_path / ("x" * 250)  # the temporary sibling must not break a name that fits
    assert main(["-q", "convert", str(models["llama"]), str(fits), "--kv-heads", "1"]) == 0
    assert (fits / "config.json").is_file()
    capsys.readouterr()
    too_long = tmp_path / ("y" * 256)
    err = _one_line_error(
        capsys, ["convert", str(models["llama"]), str(too_long), "--kv-heads", "1"]
    )
    assert err == (
        "gqa-retrofit convert: error: OUT name 'yyyyyyyyyyyyyyyyyyyyyyyy...' is 256 bytes long: "
        "the file system allows at most 255"
    )


def test_unwritable_output(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    real_access = os.access
    # the tests may run as root, for whom chmod 0555 changes nothing: deny through os.access
    monkeypatch.setattr(os, "access", lambda p, m: Path(p) != parent and real_access(p, m))
    err = _one_line_error(
        capsys, ["convert", str(models["llama"]), str(parent / "out"), "--kv-heads", "1"]
    )
    assert err == (
        f"gqa-retrofit convert: error: OUT {str(parent / 'out')!r} cannot be written: "
        f"{str(parent)!r} is not writable"
    )


def test_permission_errors_while_running_exit_2(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gqa_retrofit.conversion import convert

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(convert, "convert_checkpoint", denied)
    err = _one_line_error(
        capsys, ["convert", str(models["llama"]), str(tmp_path / "out"), "--kv-heads", "1"]
    )
    assert err == (
        f"gqa-retrofit convert: error: Permission denied: {str(tmp_path / 'out')!r} "
        "(check the path and its permissions)"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "M", "--eval-data", "T", "--dtype", "int4"],
         "gqa-retrofit eval: error: argument --dtype: invalid choice: 'int4' (choose from "
         "'auto', 'bf16', 'fp16', 'fp32') (see gqa-retrofit eval --help)"),
        (["bench", "M", "--context", "1e8"],
         "gqa-retrofit bench: error: argument --context: invalid context length '1e8': use a "
         "positive integer, optionally with k or m (e.g. 4096, 32k, 128K) "
         "(see gqa-retrofit bench --help)"),
        (["convert", "S", "O", "--kv-heads", "two"],
         "gqa-retrofit convert: error: argument --kv-heads: invalid int value: 'two'"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith(message), err


def test_bench_context_beyond_memory_or_positions(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    err = _one_line_error(capsys, ["bench", str(models["llama"]), "--context", "1000000000"])
    assert err.startswith("gqa-retrofit bench: error: --context 1000000000 needs about ")
    assert err.endswith("of memory here: choose a shorter context")
    err = _one_line_error(capsys, ["bench", str(models["gpt2"]), "--context", "250"])
    assert err == (
        "gqa-retrofit bench: error: --context + --new-tokens 314 is beyond the position limit "
        f"of {str(models['gpt2'])!r} (256 tokens): choose at most 256"
    )


def test_eval_and_bench_load_the_tools_own_types_without_remote_code(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gpt2-kv1"
    assert main(["-q", "convert", str(models["gpt2"]), str(out), "--kv-heads", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2_gqa"
    capsys.readouterr()
    argv = ["eval", str(out), "--eval-data", str(models["text"]), "--eval-seq-len", "64", "--json"]
    assert main([*argv, "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["windows"] > 0
    bench = ["bench", str(out), "--context", "16", "--new-tokens", "2", "--repeats", "1"]
    assert main([*bench, "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["kv_cache_bytes"] > 0


def test_quiet_after_the_subcommand_silences_transformers(models: dict[str, Path]) -> None:
    argv = [sys.executable, "-m", "gqa_retrofit.cli.main", "eval", str(models["llama"])]
    argv += ["--eval-data", str(models["text"]), "--eval-seq-len", "64", "--eval-windows", "2"]
    from gqa_retrofit._progress import _QUIET_ENV

    env = {k: v for k, v in os.environ.items() if k not in _QUIET_ENV}
    loud = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    assert "Loading weights" in loud.stderr  # transformers' own bar, without -q
    quiet = subprocess.run([*argv, "-q"], capture_output=True, text=True, check=True, env=env)
    assert quiet.stderr == ""
    assert quiet.stdout.startswith("perplexity ")
