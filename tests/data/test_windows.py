from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.data import DataOptions, sample_windows
from gqa_retrofit.errors import DataError

from ..conversion._calib import word_tokenizer
from ..training.helpers import char_tokenizer


def _novel(path: Path, first: int, words: int) -> Path:
    """A text whose word-tokenizer ids are first, first+1, ... (so a window says its source)."""
    path.write_text(" ".join(f"w{first + i}" for i in range(words)))
    return path


def test_windows_come_from_every_source_and_follow_the_seed(tmp_path: Path) -> None:
    paths = [_novel(tmp_path / f"n{k}.txt", 1 + 30 * k, 30) for k in range(4)]  # 10 windows each
    tok = word_tokenizer()
    sample = sample_windows([str(p) for p in paths], tok, seq_len=3, windows=8)
    assert sample.windows.shape == (8, 3)
    source_of = [(int(w[0]) - 1) // 30 for w in sample.windows]
    assert source_of == [0, 0, 1, 1, 2, 2, 3, 3]  # two windows from each of the four novels
    for w in sample.windows.tolist():  # whole windows on the source's window grid
        assert w == list(range(w[0], w[0] + 3)) and (w[0] - 1) % 30 % 3 == 0
    again = sample_windows([str(p) for p in paths], tok, seq_len=3, windows=8)
    assert torch.equal(again.windows, sample.windows)
    other = sample_windows(
        [str(p) for p in paths], tok, seq_len=3, windows=8, options=DataOptions(data_seed=1)
    )
    assert not torch.equal(other.windows, sample.windows)
    first = sample_windows([str(p) for p in paths], tok, seq_len=3, windows=8, mode="first")
    assert [w[0] for w in first.windows.tolist()] == [1, 4, 31, 34, 61, 64, 91, 94]


def test_the_record_says_exactly_what_was_used(tmp_path: Path) -> None:
    a = _novel(tmp_path / "a.txt", 1, 30)
    b = _novel(tmp_path / "b.txt", 40, 7)  # only 2 windows: gives the rest of its share to a
    sample = sample_windows([str(a), str(b)], word_tokenizer(), seq_len=3, windows=6)
    record = sample.record.to_dict()
    assert [(s["name"], s["windows"], s["tokens"]) for s in record["sources"]] == [
        ("a.txt", 4, 12),
        ("b.txt", 2, 6),
    ]
    assert record["sources"][1]["tokens_read"] == 7 and record["sources"][1]["exhausted"]
    assert record["files"] == [
        {"name": "a.txt", "bytes": a.stat().st_size, "sha256": _sha(a)},
        {"name": "b.txt", "bytes": b.stat().st_size, "sha256": _sha(b)},
    ]
    assert record["tokens"] == 18 and record["windows"] == 6 and record["seed"] == 0
    assert record["digest"] == hashlib.sha256(sample.windows.numpy().tobytes()).hexdigest()
    assert record["datasets"] == [] and record["mode"] == "sample"
    assert str(tmp_path) not in json.dumps(record)


def test_documents_are_joined_by_eos_and_rows_are_documents(tmp_path: Path) -> None:
    tok = char_tokenizer()
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("abc", "de", "fgh")))
    sample = sample_windows(str(path), tok, seq_len=5, windows=None, mode="first")
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in ("abc", "de", "fgh")]
    eos = tok.eos_token_id
    stream = [*ids[0], eos, *ids[1], eos, *ids[2]]  # no EOS after the last document
    assert len(stream) == 10
    assert sample.windows.flatten().tolist() == stream
    assert sample.record.sources[0].documents == 3


def test_too_little_data_and_bad_arguments(tmp_path: Path) -> None:
    a = _novel(tmp_path / "a.txt", 1, 10)
    tok = word_tokenizer()
    with pytest.raises(DataError) as caught:
        sample_windows(str(a), tok, seq_len=3, windows=4)
    assert str(caught.value) == (
        "data 'a.txt' has 10 tokens, fewer than the 12 requested (4 windows of 3, 3 available);"
        " give more text or fewer tokens"
    )
    assert sample_windows(str(a), tok, seq_len=3, windows=4, mode="first").windows.shape == (3, 3)
    with pytest.raises(DataError, match="has 10 tokens, fewer than one window of 11"):
        sample_windows(str(a), tok, seq_len=11, windows=1, mode="first")
    with pytest.raises(DataError, match="unknown sampling mode 'random'; valid: sample, first"):
        sample_windows(str(a), tok, seq_len=3, windows=1, mode="random")
    with pytest.raises(DataError, match="windows must be at least 1, got 0"):
        sample_windows(str(a), tok, seq_len=3, windows=0)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
