"""Retrieval probes on the card: table rows, model-index entries, the lost-retrieval note."""

from __future__ import annotations

import json
from pathlib import Path

from gqa_retrofit.hub.card import render_card

PASSKEY = "passkey retrieval (filler haystack)"
COPY = "copy probe (256 random tokens, repeated)"


def _records(model: str, passkey: float, copy: float) -> list[dict]:
    return [
        {"model": model, "dataset": PASSKEY, "metric": "passkey_success@1024", "value": passkey},
        {"model": model, "dataset": COPY, "metric": "copy_second_copy_loss", "value": copy},
    ]


def _set_evaluations(path: Path, records: list[dict]) -> None:
    manifest = json.loads((path / "gqa_retrofit.json").read_text())
    manifest["evaluations"] = records
    (path / "gqa_retrofit.json").write_text(json.dumps(manifest))


def test_lost_retrieval_is_on_the_card(converted_dir: Path) -> None:
    from huggingface_hub import ModelCard

    _set_evaluations(converted_dir, _records("source", 1.0, 2.0) + _records("converted", 0.0, 9.0))
    text = render_card(converted_dir)
    assert f"| {PASSKEY} | passkey_success@1024 | 1.00 | 0.00 |" in text
    assert f"| {COPY} | copy_second_copy_loss | 2.00 | 9.00 |" in text
    assert (
        "> **Note.** This model lost the source's in-context retrieval (copy-probe loss 9.00 is "
        "4.5x the source's 2.00 (keep: <= 1.3x); passkey at 1,024 tokens 0% vs the source's "
        "100%)" in text
    )
    metrics = {(r.metric_type, r.metric_value) for r in ModelCard(text).data.eval_results}
    assert metrics == {("passkey_success@1024", 0.0), ("copy_second_copy_loss", 9.0)}


def test_kept_retrieval_adds_no_note(converted_dir: Path) -> None:
    _set_evaluations(
        converted_dir,
        _records("source", 1.0, 2.0)
        + _records("converted", 0.0, 9.0)
        + _records("trained", 1.0, 2.2),
    )
    assert "**Note.**" not in render_card(converted_dir)
