"""Shared pieces of the retrieval research scripts (lead's experiments for issue 14, part 2).

The copy probe here is the research one the numbers in results/ were measured with: 2 (or 4)
spans of 256 random token ids in [100, vocab - 100), seed 0, each repeated twice, no BOS; mean
loss over the predicted tokens of the second copy. It is close to, but not the same protocol as,
the product's :func:`gqa_retrofit.evaluation.retrieval.copy_probe` (which adds BOS and scores
matching bigrams).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def source_and_tokenizer() -> tuple[Path, Any]:
    from transformers import AutoTokenizer

    from gqa_retrofit.assets import default_model_dir

    src = default_model_dir()
    return src, AutoTokenizer.from_pretrained(src)


def load_model(src: Path, attn: str = "sdpa") -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.float32, attn_implementation=attn
    ).eval()


def copy_batch(vocab: int, n: int = 4, span: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` spans of ``span`` random ids, each repeated twice: ``[n, 2 * span]``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(100, vocab - 100, (n, span), generator=g)
    return torch.cat([x, x], 1)


@torch.no_grad()
def copy_probe(model: Any, vocab: int, n: int = 4, span: int = 256, seed: int = 0) -> dict:
    """Mean next-token loss on the first and on the second copy (nats)."""
    ids = copy_batch(vocab, n, span, seed)
    logits = model(ids).logits.float()
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    ).view(n, -1)
    return {
        "first": loss[:, : span - 1].mean().item(),
        "second": loss[:, span - 1 :].mean().item(),
    }


@torch.no_grad()
def persuasion_perplexity(model: Any, tokenizer: Any, windows: int = 8, seq: int = 512) -> float:
    """Perplexity on the first ``windows`` windows of *Persuasion* (HF labels=, 511 predicted)."""
    from gqa_retrofit.assets import default_corpus

    text = Path(default_corpus().test).read_text(encoding="utf-8")
    ids = tokenizer(text, add_special_tokens=False).input_ids[: windows * seq]
    x = torch.tensor(ids).view(windows, seq)
    total = 0.0
    for i in range(0, windows, 4):
        total += model(x[i : i + 4], labels=x[i : i + 4]).loss.item() * x[i : i + 4].shape[0]
    return math.exp(total / windows)


def append_jsonl(name: str, row: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / name).open("a") as f:
        f.write(json.dumps(row) + "\n")
