"""No output file of convert, train or retrofit holds an absolute local path.

Outputs get published: a manifest, ``training_state.json``, a report or a card that names the
user's home, cache or temporary directories leaks them. Every file of every output is scanned
(text and binary) for the test's temporary directory prefix.
"""

from __future__ import annotations

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
    retrofit(
        str(src),
        out,
        kv_heads=1,
        train_data=[str(train)],
        train_steps=2,
        eval_data=str(test),
        eval_windows=2,
        eval_seq_len=32,
        bench_contexts=[16],
        bench_new_tokens=2,
        bench_repeats=1,
        train={"seq_len": 32, "batch_size": 2, "warmup": 0, "save_every": 1},
    )
    outputs = sorted(p.name for p in out.iterdir())
    assert any((out / n / "training_state.json").is_file() for n in outputs)  # a train output
    found = _files_naming(out, str(tmp_path))
    import re

    for f in found:
        print(
            "FILE",
            f,
            sorted(
                set(
                    re.findall(
                        re.escape(str(tmp_path)) + r"[^\"\s]*",
                        (out / f).read_text(errors="replace"),
                    )
                )
            )[:6],
        )
    assert found == []
