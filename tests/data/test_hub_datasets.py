"""Hub datasets through the real ``datasets``/``huggingface_hub`` clients, against the loopback
Hub stand-in (``tests/hub_server.py``): config, split, revision, token handling."""

from __future__ import annotations

import json

import pytest

from gqa_retrofit.data import DataOptions, read_text, sample_windows
from gqa_retrofit.errors import DataError
from hub_server import READ_TOKEN

from ..conversion._calib import word_tokenizer
from .test_datasets import CARD


def _jsonl(*texts: str) -> bytes:
    return "".join(json.dumps({"content": t}) + "\n" for t in texts).encode()


@pytest.fixture
def hub_dataset(hub_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import datasets.config

    # datasets reads HF_ENDPOINT once, at import: point this process's copy at the stand-in
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub_server.endpoint)
    monkeypatch.setattr(
        datasets.config,
        "HUB_DATASETS_URL",
        hub_server.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
    )
    files = {
        "README.md": CARD.encode(),
        "small/train.jsonl": _jsonl("w1 w2 w3", "w4 w5 w6"),
        "small/validation.jsonl": _jsonl("w7 w8 w9"),
        "other/train.jsonl": _jsonl("w10 w11 w12"),
    }
    first = hub_server.add_repo("tester/corpus", files, repo_type="dataset")
    changed = {**files, "small/validation.jsonl": _jsonl("w20 w21 w22")}
    repo = hub_server.repos["datasets/tester/corpus"]
    latest = hub_server._commit(repo, "main", changed, "new validation rows")
    return hub_server, first, latest


def test_config_split_and_revision_of_a_hub_dataset(hub_dataset) -> None:  # type: ignore[no-untyped-def]
    server, first, latest = hub_dataset
    options = DataOptions(text_column="content", dataset_config="small", dataset_split="validation")
    now = sample_windows("tester/corpus", word_tokenizer(), seq_len=3, windows=1, options=options)
    assert now.windows.tolist() == [[20, 21, 22]]
    pinned = DataOptions(
        text_column="content",
        dataset_config="small",
        dataset_split="validation",
        dataset_revision=first,
    )
    old = sample_windows(
        "tester/corpus", word_tokenizer(), seq_len=3, windows=1, options=pinned, token=READ_TOKEN
    )
    assert old.windows.tolist() == [[7, 8, 9]]
    record = old.record.to_dict()
    assert record["datasets"] == ["tester/corpus"] and record["files"] == []
    assert record["sources"][0]["dataset"] == {
        "id": "tester/corpus",
        "config": "small",
        "split": "validation",
        "revision": first,
        "commit": first,
    }
    assert now.record.sources[0].dataset == {
        **record["sources"][0]["dataset"],
        "revision": None,
        "commit": latest,
    }
    assert READ_TOKEN not in json.dumps(record)
    assert not server.unhandled


def test_unknown_dataset_and_revision_are_one_line_errors(hub_dataset) -> None:  # type: ignore[no-untyped-def]
    options = DataOptions(text_column="content", dataset_config="small", dataset_revision="v9")
    with pytest.raises(DataError) as caught:
        read_text("tester/corpus", options, token=READ_TOKEN)
    message = str(caught.value)
    assert message.startswith("cannot read Hub dataset 'tester/corpus' (config 'small', split ")
    assert "v9" in message and "\n" not in message and READ_TOKEN not in message
    with pytest.raises(DataError, match=r"^cannot read Hub dataset 'tester/absent' \(config"):
        read_text("tester/absent")
