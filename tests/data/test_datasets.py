"""Dataset repositories through ``datasets.load_dataset`` (config, split), offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.data import DataOptions, read_text, sample_windows
from gqa_retrofit.errors import DataError

from ..conversion._calib import word_tokenizer

CARD = """---
configs:
- config_name: small
  data_files:
  - split: train
    path: small/train.jsonl
  - split: validation
    path: small/validation.jsonl
- config_name: other
  data_files:
  - split: train
    path: other/train.jsonl
---
# A dataset repository laid out like one on the Hub
"""


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode for this test only (``datasets`` reads the variable once, at import)."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def dataset_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "my-dataset"
    for name, rows in {
        "small/train.jsonl": ["w1 w2 w3 w4", "w5 w6"],
        "small/validation.jsonl": ["w7 w8 w9"],
        "other/train.jsonl": ["w10 w11 w12"],
    }.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"content": r, "n": 1}) + "\n" for r in rows))
    (repo / "README.md").write_text(CARD)
    return repo


@pytest.mark.usefixtures("offline")
def test_config_and_split_choose_the_rows(dataset_repo: Path) -> None:
    options = DataOptions(text_column="content", dataset_config="small")
    assert read_text(str(dataset_repo), options) == "w1 w2 w3 w4\n\nw5 w6"
    validation = DataOptions(
        text_column="content", dataset_config="small", dataset_split="validation"
    )
    assert read_text(str(dataset_repo), validation) == "w7 w8 w9"
    other = DataOptions(text_column="content", dataset_config="other")
    sample = sample_windows(
        str(dataset_repo), word_tokenizer(), seq_len=3, windows=1, options=other
    )
    assert sample.windows.tolist() == [[10, 11, 12]]
    source = sample.record.to_dict()["sources"][0]
    assert source["kind"] == "local-dataset" and source["name"] == "my-dataset"
    assert source["dataset"] == {
        "id": "my-dataset",
        "config": "other",
        "split": "train",
        "revision": None,
        "commit": None,
    }
    assert sorted(f["name"] for f in source["files"]) == [
        "other/train.jsonl",
        "small/train.jsonl",
        "small/validation.jsonl",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            DataOptions(text_column="content", dataset_config="nope"),
            "cannot read dataset repository 'my-dataset' (config 'nope', split 'train'): "
            "ValueError: BuilderConfig 'nope' not found. Available: ['small', 'other']",
        ),
        (
            DataOptions(text_column="content", dataset_config="small", dataset_split="test"),
            "cannot read dataset repository 'my-dataset' (config 'small', split 'test'): "
            "ValueError: Bad split: test. Available splits: ['train', 'validation']",
        ),
        (
            DataOptions(dataset_config="small"),
            "dataset repository 'my-dataset' has no column 'text'; columns: content, n "
            "(choose one with --text-column)",
        ),
    ],
)
@pytest.mark.usefixtures("offline")
def test_bad_config_split_or_column(
    dataset_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: DataOptions,
    message: str,
) -> None:
    monkeypatch.chdir(dataset_repo.parent)
    with pytest.raises(DataError) as caught:
        read_text("my-dataset", options)
    assert str(caught.value) == message


@pytest.mark.usefixtures("offline")
def test_an_unreachable_hub_dataset_is_one_line_and_hides_the_token() -> None:
    with pytest.raises(DataError) as caught:
        read_text("owner/absent", token="hf_secret_value_123")
    message = str(caught.value)
    assert message.startswith(
        "cannot read Hub dataset 'owner/absent' (config None, split 'train'): ConnectionError"
    )
    assert "\n" not in message and "hf_secret_value_123" not in message
