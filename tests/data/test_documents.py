from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.data import DataOptions, iter_documents, read_text, resolve_sources
from gqa_retrofit.errors import DataError


def _rows(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_rows_are_documents_of_the_text_column(tmp_path: Path, suffix: str) -> None:
    rows = [{"body": "first", "id": 1}, {"body": "  ", "id": 2}, {"body": "third", "id": 3}]
    path = _rows(tmp_path / f"d{suffix}", rows)
    docs = list(iter_documents(resolve_sources([str(path)]), DataOptions(text_column="body")))
    assert docs == ["first", "third"]  # blank rows are skipped
    with pytest.raises(DataError) as caught:
        list(iter_documents(resolve_sources([str(path)])))
    assert str(caught.value) == (
        f"data file 'd{suffix}' has no column 'text'; columns: body, id "
        "(choose one with --text-column)"
    )
    with pytest.raises(DataError, match=f"column 'id' of data file 'd{suffix}' holds int"):
        list(iter_documents(resolve_sources([str(path)]), DataOptions(text_column="id")))


def test_a_text_file_is_one_document_and_read_text_keeps_it_exact(tmp_path: Path) -> None:
    text = "Line one.\n\nLine two, with  spaces.\n"
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.md").write_text("# B\n")
    assert read_text(str(tmp_path / "a.txt")) == text
    assert read_text([str(tmp_path / "a.txt"), str(tmp_path / "b.md")]) == text + "\n\n# B\n"
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(DataError, match=r"data 'blank.txt' is empty: no non-blank documents"):
        read_text(str(tmp_path / "blank.txt"))


def test_malformed_json_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(DataError, match=r"data file 'bad.jsonl' line 2 is not valid JSON"):
        list(iter_documents(resolve_sources([str(tmp_path / "bad.jsonl")])))
    (tmp_path / "list.jsonl").write_text('["not", "an", "object"]\n')
    with pytest.raises(DataError, match="holds a str where an object"):
        list(iter_documents(resolve_sources([str(tmp_path / "list.jsonl")])))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"data file 'broken\.parquet' is not a readable parquet"):
        list(iter_documents(resolve_sources([str(tmp_path / "broken.parquet")])))
