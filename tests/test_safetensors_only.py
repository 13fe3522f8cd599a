"""Every loader refuses pickled ``pytorch_model.bin`` weights (safetensors only).

The pickle below would create a canary file if anything unpickled it with ``weights_only=False``;
``eval``, ``bench``, ``train`` and ``convert`` must all refuse the checkpoint before that.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch

from gqa_retrofit.cli.main import main
from gqa_retrofit.errors import ConversionError, ModelSourceError


class _Canary:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (self.path,))


@pytest.fixture
def pickled(tmp_path: Path) -> tuple[Path, Path]:
    from tests.training.helpers import char_tokenizer
    from tiny_models import tiny_model

    model = tiny_model("llama")
    directory = tmp_path / "pickled"
    model.config.save_pretrained(directory)
    char_tokenizer().save_pretrained(directory)
    canary = tmp_path / "unpickled"
    state = dict(model.state_dict())
    state["canary"] = _Canary(canary)  # type: ignore[assignment]
    torch.save(state, directory / "pytorch_model.bin")
    return directory, canary


def _message(directory: Path) -> str:
    return (
        f"no safetensors weights (model.safetensors or model.safetensors.index.json) in "
        f"{str(directory)!r}: only PyTorch .bin weights found; re-save them as safetensors first "
        "(model.save_pretrained(dir)); gqa-retrofit loads safetensors only"
    )


def test_every_python_loader_refuses_pickled_weights(pickled: tuple[Path, Path]) -> None:
    from gqa_retrofit.evaluation.bench import load_for_bench
    from gqa_retrofit.evaluation.perplexity import load_model_and_tokenizer
    from gqa_retrofit.training.modeling import load_causal_lm

    directory, canary = pickled
    for load in (load_model_and_tokenizer, load_for_bench, load_causal_lm):
        with pytest.raises(ModelSourceError) as info:
            load(directory)
        assert str(info.value) == _message(directory), load.__name__
    from gqa_retrofit.conversion.convert import convert_checkpoint

    with pytest.raises(ConversionError, match=r"only PyTorch \.bin weights found"):
        convert_checkpoint(directory, directory.parent / "out", kv_heads=1)
    assert not canary.exists()


def test_eval_bench_and_train_commands_exit_2(
    pickled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, canary = pickled
    text = tmp_path / "text.txt"
    text.write_text("It is a truth universally acknowledged. " * 40)
    commands = [
        ["eval", str(directory), "--eval-data", str(text), "--eval-seq-len", "32"],
        ["bench", str(directory), "--context", "16"],
        ["train", str(directory), str(tmp_path / "out"), "--train-data", str(text), "--seq-len=32"],
    ]
    for argv in commands:
        assert main(["-q", *argv]) == 2, argv
        assert _message(directory) in capsys.readouterr().err, argv
    assert not canary.exists()
