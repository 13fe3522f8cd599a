"""Induction and previous-token score of every attention head of the embedded model.

Run: PYTHONPATH=src python benchmarks/retrieval_research/head_scores.py
Writes results/head_scores.json: per layer, per query head, the mean attention (eager) from a
token of the second copy to the token after its first occurrence ("induction"), and from each
token to the one before it ("prev"), on 2 spans of 256 random ids (seed 1) repeated twice.
"""

from __future__ import annotations

import json

import torch
from harness import RESULTS, copy_batch, load_model, source_and_tokenizer


def main() -> None:
    src, tok = source_and_tokenizer()
    model = load_model(src, "eager")
    span = 256
    ids = copy_batch(tok.vocab_size, 2, span, seed=1)
    with torch.no_grad():
        out = model(ids, output_attentions=True)
    second = torch.arange(span + 1, 2 * span)
    rows = torch.arange(1, 2 * span)
    induction, prev = [], []
    for a in out.attentions:  # [B, H, T, T]
        induction.append(a[:, :, second, second - span + 1].mean((0, 2)).tolist())
        prev.append(a[:, :, rows, rows - 1].mean((0, 2)).tolist())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "head_scores.json").write_text(json.dumps({"induction": induction, "prev": prev}))


if __name__ == "__main__":
    main()
