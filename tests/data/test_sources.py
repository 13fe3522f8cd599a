from __future__ import annotations

from pathlib import Path

import pytest

from gqa_retrofit.data import DataOptions, local_files, resolve_source, resolve_sources
from gqa_retrofit.errors import DataError, GQARetrofitError


def test_files_directories_and_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("a")
    (tmp_path / "docs" / "sub" / "b.md").write_text("b")
    (tmp_path / "docs" / "c.jsonl").write_text('{"text": "c"}\n')
    (tmp_path / "docs" / "skip.csv").write_text("x,y\n")
    (tmp_path / "docs" / ".hidden.txt").write_text("h")
    monkeypatch.chdir(tmp_path)

    directory = resolve_source("docs")
    assert directory.kind == "files" and directory.name == "docs"
    assert [(f.name, f.kind) for f in directory.files] == [
        ("a.txt", "text"),
        ("c.jsonl", "json"),
        ("sub/b.md", "text"),
    ]
    one = resolve_source(str(tmp_path / "docs" / "a.txt"))  # absolute inside the cwd
    assert one.name == "docs/a.txt" and [f.name for f in one.files] == ["a.txt"]
    pattern = resolve_source("docs/**/*.md")
    assert pattern.name == "docs/**/*.md" and [f.name for f in pattern.files] == ["sub/b.md"]
    assert local_files(["docs/*.txt", "docs"]) == {
        (tmp_path / "docs" / n).resolve() for n in ("a.txt", "c.jsonl", "sub/b.md")
    }


def test_names_never_hold_an_absolute_path_outside_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "emma.txt").write_text("x")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert resolve_source(str(tmp_path / "corpus" / "emma.txt")).name == "emma.txt"
    assert resolve_source(str(tmp_path / "corpus")).name == "corpus"
    assert resolve_source(str(tmp_path / "corpus" / "*.txt")).name == "corpus/*.txt"


def test_hub_ids_and_dataset_repositories(tmp_path: Path) -> None:
    assert resolve_source("owner/name").kind == "hub"
    assert resolve_source("wikitext").kind == "hub"
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: x\n  data_files: data/*\n---\n")
    (repo / "data" / "train.jsonl").write_text('{"text": "t"}\n')
    source = resolve_source(str(repo))
    assert source.kind == "local-dataset" and source.dataset == str(repo)
    assert [f.name for f in source.files] == ["data/train.jsonl"]  # README.md is not data
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "README.md").write_text("# just a readme\n")
    assert resolve_source(str(plain)).kind == "files"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing/file.txt", "data file 'missing/file.txt' does not exist"),
        ("./missing/file", "data './missing/file' does not exist: give an existing file (.txt,"),
        ("nothing/*.txt", "data glob 'nothing/*.txt' matches no files"),
        ("x.csv", "data file 'x.csv' has an unsupported type '.csv': use .txt, .text, .md,"),
        ("empty_dir", "data directory 'empty_dir' holds no .txt, .text, .md, .jsonl"),
        ("", "a data source is an empty string"),
    ],
)
def test_bad_specs_are_one_line_data_errors(
    spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("a,b\n")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError) as caught:
        resolve_source(spec)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, GQARetrofitError) and caught.value.exit_code == 2


def test_no_sources_and_bad_options_are_refused() -> None:
    with pytest.raises(DataError, match="no data sources given"):
        resolve_sources([])
    with pytest.raises(DataError, match="text_column must name a column"):
        DataOptions(text_column=" ")
    with pytest.raises(DataError, match="data seed must be a non-negative integer, got -1"):
        DataOptions(data_seed=-1)
    with pytest.raises(DataError, match="dataset_split must name a split"):
        DataOptions(dataset_split="")


def test_a_single_spec_is_accepted_as_a_path(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    source = resolve_sources(tmp_path / "a.txt")[0]
    assert [f.path for f in source.files] == [tmp_path / "a.txt"]
