"""Perplexity protocol and its bad inputs, on a tiny model with a character tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gqa_retrofit.cli.main import main
from gqa_retrofit.errors import ConfigError, DataError, ModelSourceError
from gqa_retrofit.evaluation.perplexity import evaluate_perplexity, token_windows

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.\n"
) * 8


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_windows_are_non_overlapping_and_full() -> None:
    ids = list(range(10))
    assert token_windows(ids, 4, None) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert token_windows(ids, 4, 1) == [[0, 1, 2, 3]]
    assert token_windows(ids, 11, None) == []


def test_perplexity_matches_a_direct_computation(tiny_llama_dir: Path, text_file: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = evaluate_perplexity(
        str(tiny_llama_dir), text_file, seq_len=32, max_windows=5, batch_size=2
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    losses = []
    with torch.no_grad():
        for i in range(5):
            window = torch.tensor([ids[i * 32 : (i + 1) * 32]])
            # HF's own shifted loss: mean over the 31 predicted tokens of the window
            losses.append(float(model(input_ids=window, labels=window).loss))
    expected = sum(losses) / len(losses)
    assert result.windows == 5
    assert result.tokens == 5 * 31
    assert result.text_tokens == len(ids)
    assert math.isclose(result.loss, expected, rel_tol=1e-5)
    assert math.isclose(result.perplexity, math.exp(expected), rel_tol=1e-5)
    # batching does not change the result
    single = evaluate_perplexity(
        str(tiny_llama_dir), text_file, seq_len=32, max_windows=5, batch_size=1
    )
    assert math.isclose(single.loss, result.loss, rel_tol=1e-5)


def test_cli_json(
    tiny_llama_dir: Path, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--quiet",
            "eval",
            str(tiny_llama_dir),
            "--eval-data",
            str(text_file),
            "--eval-seq-len",
            "64",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] == len(TEXT) // 64
    assert out["tokens"] == out["windows"] * 63
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]))


def test_missing_model_path(tmp_path: Path, text_file: Path) -> None:
    with pytest.raises(ModelSourceError, match="neither an existing directory nor a Hub id"):
        evaluate_perplexity(str(tmp_path / "no" / "such" / "..model"), text_file)


def test_directory_without_config(tmp_path: Path, text_file: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ModelSourceError, match=r"has no config\.json"):
        evaluate_perplexity(str(empty), text_file)


def test_empty_text(tiny_llama_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        evaluate_perplexity(str(tiny_llama_dir), empty)


def test_text_shorter_than_one_window(tiny_llama_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("Too short.", encoding="utf-8")
    with pytest.raises(DataError, match=r"has 10 tokens, fewer than one window of 512"):
        evaluate_perplexity(str(tiny_llama_dir), short)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_len": 0}, "seq_len=0 is invalid: must be an integer >= 2"),
        ({"seq_len": 1}, "seq_len=1 is invalid: must be an integer >= 2"),
        ({"seq_len": "long"}, "seq_len='long' is invalid: must be an integer >= 2"),
        ({"max_windows": 0}, "max_windows=0 is invalid: must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size=2.5 is invalid: must be an integer >= 1"),
        # past the position table: an IndexError (gpt2) or silent extrapolation before
        ({"seq_len": 300}, "seq_len 300 is beyond the position limit of this llama model (256 "
         "tokens): choose at most 256"),
    ],
)  # fmt: skip
def test_bad_arguments_of_the_api(
    tiny_llama_dir: Path, text_file: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        evaluate_perplexity(str(tiny_llama_dir), text_file, **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval-seq-len", "0"], "--eval-seq-len 0 is invalid: must be >= 2"),
        (["--eval-windows", "0"], "--eval-windows 0 is invalid: must be >= 1"),
        (["--eval-seq-len", "4096"], "--eval-seq-len 4096 is beyond the position limit of"),
    ],
)
def test_cli_bad_input_exit_2(
    tiny_llama_dir: Path,
    text_file: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert main(["eval", str(tiny_llama_dir), "--eval-data", str(text_file), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_dtype_and_device_are_the_ones_asked_for(tiny_llama_dir: Path, text_file: Path) -> None:
    fp32 = evaluate_perplexity(str(tiny_llama_dir), text_file, seq_len=32, max_windows=2)
    assert (fp32.dtype, fp32.device) == ("fp32", "cpu")  # auto: the checkpoint's dtype, the CPU
    bf16 = evaluate_perplexity(
        str(tiny_llama_dir), text_file, seq_len=32, max_windows=2, dtype="bfloat16", device="cpu"
    )
    assert (bf16.dtype, bf16.device) == ("bf16", "cpu")
    assert math.isclose(bf16.loss, fp32.loss, rel_tol=0.02)  # bf16 rounding, same model
    assert bf16.loss != fp32.loss
    with pytest.raises(ConfigError, match=r"^unknown dtype 'int4': valid are auto, bf16, fp16"):
        evaluate_perplexity(str(tiny_llama_dir), text_file, dtype="int4")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^device 'cuda:0' is not available"):
            evaluate_perplexity(str(tiny_llama_dir), text_file, device="cuda:0")
