"""The README's headline commands, run as written on the embedded model (integration).

The commands are read from the README's "30 seconds" block; only paths are substituted (the
embedded SmolLM2 for ``path/to/llama`` and the Hub id, Austen text for ``train.txt`` and
``test.txt``, the loopback Hub for the push) and the budgets are lowered with the flags the
README names (``--calibration-tokens``, ``--train-steps``, ``--eval-windows``, ...).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main

README = Path(__file__).parents[1] / "README.md"

SMALL = {  # budgets per command: the README's flags, smaller values
    "convert": ["--calibration-tokens", "512"],
    "eval": ["--eval-windows", "2", "--eval-seq-len", "128"],
    "train": ["--train-steps", "2", "--seq-len", "64", "--batch-size", "1", "--warmup", "0"],
    "retrofit": [
        "--calibration-tokens", "512", "--bench-context", "64", "--bench-repeats", "1",
        "--bench-new-tokens", "2",
    ],
}  # fmt: skip


def headline_commands() -> list[list[str]]:
    """The ``gqa-retrofit`` commands of the README's first bash block (continuations joined)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("## 30 seconds", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("gqa-retrofit")]


def test_the_headline_block_is_what_this_test_runs() -> None:
    names = [argv[1] for argv in headline_commands()]
    assert names == ["estimate", "convert", "verify", "eval", "train", "retrofit"]
    retrofit = headline_commands()[-1]
    assert "--train-data" in retrofit and "--push" in retrofit


@pytest.mark.integration
def test_headline_commands_on_the_embedded_model(
    default_model: Path,
    tmp_path: Path,
    hub_server: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from huggingface_hub import HfApi

    from gqa_retrofit.assets import default_corpus

    corpus = default_corpus(ood=False)
    emma = next(p for p in corpus.train if p.name == "emma.txt")
    (tmp_path / "train.txt").write_text(emma.read_text(encoding="utf-8")[:40_000], "utf-8")
    (tmp_path / "test.txt").write_text(corpus.test.read_text(encoding="utf-8")[:20_000], "utf-8")
    (tmp_path / "small.yaml").write_text("train: {seq_len: 64, batch_size: 1, warmup: 0}\n")
    monkeypatch.chdir(tmp_path)
    swap = {
        "path/to/llama": str(default_model),
        "meta-llama/Meta-Llama-3-8B": str(default_model),
        "me/llama-kv1": "tester/llama-kv1",
    }
    for argv in headline_commands():
        argv = [swap.get(a, a) for a in argv[1:]]
        if argv[0] == "retrofit":
            argv[argv.index("--train-steps") + 1] = "2"
            argv += ["--config", "small.yaml"]
        code = main(["-q", *argv, *SMALL.get(argv[0], [])])
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)
        if argv[0] == "eval":
            assert captured.out.startswith("perplexity ")
        if argv[0] == "retrofit":
            assert "the conversion calibrates on the --train-data (train.txt)" in captured.err

    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((tmp_path / "out/llama-kv1/gqa_retrofit.json").read_text())
    assert manifest["method"]["name"] == "pca-refit"  # the data-aware default, calibrated
    trained = json.loads((tmp_path / "out/llama-kv1-trained/config.json").read_text())
    assert trained["num_key_value_heads"] == 1

    state = json.loads((tmp_path / "out/retrofit/pipeline_state.json").read_text())
    assert state["stages"]["train"]["status"] == "done"  # trained, not silently skipped
    assert state["options"]["calibration"] == ["train.txt"]  # recorded
    convert = state["stages"]["convert"]["result"]["report"]
    assert convert["method"] == "pca-refit"
    files = set(HfApi().list_repo_files("tester/llama-kv1"))
    assert {"model.safetensors", "config.json", "README.md", "gqa_retrofit.json"} <= files
