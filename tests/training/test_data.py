from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.errors import DataError
from gqa_retrofit.training.data import block_indices, load_packed, pack_documents

from .helpers import char_tokenizer


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_packing_puts_eos_after_each_document_and_drops_the_tail() -> None:
    tok = char_tokenizer()
    blocks, n_docs = pack_documents(["abcde", "xyz", "hello!"], tok, 4)
    stream = [*_ids(tok, "abcde"), 2, *_ids(tok, "xyz"), 2, *_ids(tok, "hello!"), 2]
    assert n_docs == 3
    assert blocks.tolist() == [stream[0:4], stream[4:8], stream[8:12], stream[12:16]]
    assert len(stream) == 17  # the 17th token (final EOS) is dropped with the partial block


def test_text_files_are_one_document_each(tmp_path: Path) -> None:
    tok = char_tokenizer()
    (tmp_path / "a.txt").write_text("line one\nline two\n")
    (tmp_path / "b.txt").write_text("other\n")
    data = load_packed([str(tmp_path / "*.txt")], tok, 5)
    stream = [*_ids(tok, "line one\nline two\n"), 2, *_ids(tok, "other\n"), 2]
    assert data.documents == 2
    assert data.blocks.flatten().tolist() == stream[: len(stream) // 5 * 5]
    again = load_packed([str(tmp_path)], tok, 5)  # a directory reads the same files
    assert again.fingerprint == data.fingerprint


def test_jsonl_and_parquet_with_a_text_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tok = char_tokenizer()
    rows = [{"body": "first document", "id": 1}, {"body": "second one", "id": 2}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    a = load_packed([str(tmp_path / "d.jsonl")], tok, 4, text_column="body")
    b = load_packed([str(tmp_path / "d.parquet")], tok, 4, text_column="body")
    stream = [*_ids(tok, "first document"), 2, *_ids(tok, "second one"), 2]
    assert a.blocks.flatten().tolist() == stream[: len(stream) // 4 * 4]
    assert torch.equal(a.blocks, b.blocks)
    with pytest.raises(DataError, match="has no column 'text'; columns: body, id"):
        load_packed([str(tmp_path / "d.jsonl")], tok, 4)


def test_empty_and_too_short_data_are_refused(tmp_path: Path) -> None:
    tok = char_tokenizer()
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "short.txt").write_text("tiny")
    with pytest.raises(DataError, match="is empty"):
        load_packed([str(tmp_path / "empty.txt")], tok, 8)
    with pytest.raises(DataError, match="shorter than one block of 8 tokens"):
        load_packed([str(tmp_path / "short.txt")], tok, 8)
    with pytest.raises(DataError, match="matches no files"):
        load_packed([str(tmp_path / "*.md")], tok, 8)
    with pytest.raises(DataError, match=r"unsupported type '\.csv'"):
        (tmp_path / "x.csv").write_text("a,b\n")
        load_packed([str(tmp_path / "x.csv")], tok, 8)


def test_block_order_is_a_seeded_permutation_per_epoch() -> None:
    first = block_indices(10, seed=3, start=0, count=30)
    assert first == block_indices(10, seed=3, start=0, count=30)
    for epoch in range(3):
        assert sorted(first[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert first[:10] != first[10:20]  # a fresh permutation each epoch
    assert block_indices(10, seed=4, start=0, count=10) != first[:10]
    # any position is addressable on its own (this is what resume relies on)
    assert block_indices(10, seed=3, start=17, count=5) == first[17:22]
