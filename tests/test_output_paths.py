"""No output file of convert, train or retrofit holds an absolute local path.

Outputs get published: a manifest, ``training_state.json``, a report or a card that names the
user's home, cache or temporary directories leaks them. Every file of every output is scanned
(text and binary) for the test's temporary directory prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

from gqa_retrofit.pipeline.retrofit import retrofit

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. Emma Woodhouse, handsome, clever, and rich, with a "
    "comfortable home and happy disposition, seemed to unite some of the best blessings of "
    "existence. "
)


def _files_naming(root: Path, prefix: str) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and prefix.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_no_output_file_names_a_local_absolute_path(tmp_path: Path) -> None:
    from tiny_models import save_tiny_model

    src = save_tiny_model(tmp_path / "src", "llama")
    train = tmp_path / "data" / "train.txt"
    train.parent.mkdir()
    train.write_text(TEXT * 6, encoding="utf-8")
    test = tmp_path / "data" / "test.txt"
    test.write_text(TEXT[::-1] * 3, encoding="utf-8")
    out = tmp_path / "run"
    arguments = dict(
        kv_heads=1,
        train_data=[str(train)],  # also the calibration text (announced)
        calibration_tokens=512,
        train_steps=2,
        eval_data=str(test),
        eval_windows=2,
        eval_seq_len=32,
        bench_contexts=[16],
        bench_new_tokens=2,
        bench_repeats=1,
        train={"seq_len": 32, "batch_size": 2, "warmup": 0, "save_every": 1},
    )
    first = retrofit(str(src), out, **arguments)
    outputs = sorted(p.name for p in out.iterdir())
    assert any((out / n / "training_state.json").is_file() for n in outputs)  # a train output
    # the run's own records too: pipeline_state.json, metrics.jsonl, estimate.json/.md
    assert _files_naming(out, str(tmp_path)) == []
    state = json.loads((out / "pipeline_state.json").read_text())
    assert state["options"]["src"] == "../src" and state["options"]["out"] == "."
    assert state["options"]["train_data"] == ["../data/train.txt"]
    assert state["stages"]["convert"]["result"]["report"]["output"] == "src-kv1-converted"
    assert json.loads((out / "estimate.json").read_text())["model"] == "../src"
    # the same command resumes: every stage is done, nothing runs again, same results
    events = (out / "metrics.jsonl").read_text().count("\n")
    again = retrofit(str(src), out, **arguments)
    assert again.results == first.results
    assert (out / "metrics.jsonl").read_text().count("\n") == events
    final = out / "src-kv1"
    assert (final / "retrofit_report.md").is_file() and (final / "README.md").is_file()
    assert "../data/train.txt" in (out / "report.md").read_text()  # still says which file
    assert "../../data/train.txt" in (final / "retrofit_report.md").read_text()


def test_convert_and_train_outputs_hold_no_absolute_path(tmp_path: Path) -> None:
    from gqa_retrofit.conversion.convert import convert_checkpoint
    from gqa_retrofit.training import TrainOptions, train
    from tests.training.helpers import save_tiny_lm, write_corpus

    src = save_tiny_lm(tmp_path / "models" / "src")
    convert_checkpoint(src, tmp_path / "outs" / "converted", kv_heads=1)
    write_corpus(tmp_path / "corpus")
    out = tmp_path / "outs" / "trained"
    options = {"model": str(tmp_path / "outs" / "converted"), "out": str(out), "seq_len": 32}
    options.update(data=[str(tmp_path / "corpus" / "*.txt")], batch_size=2, max_steps=2)
    train(TrainOptions.from_dict({**options, "warmup": 0, "save_every": 1}))
    assert any(out.glob("checkpoints/*/state.json"))
    assert _files_naming(tmp_path / "outs", str(tmp_path)) == []
    manifest = json.loads((out / "gqa_retrofit.json").read_text())
    assert manifest["source"]["name"] == "../../models/src"  # moved with the manifest
    marker = json.loads((out / "training_state.json").read_text())
    assert marker["model"] == "../converted"
