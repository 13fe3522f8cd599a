"""Greedy continuations of fixed prompts and how repetitive they are.

A converted model can reach a decent perplexity and still loop on a phrase when it generates, so
the benchmarks, the demo and the report look at greedy continuations too, with the fraction of
repeated 4-grams as the number that catches the loop: for the token ids ``t`` of a continuation,
``1 - |distinct 4-grams| / |4-grams|`` (0 for text that never repeats a 4-gram, close to 1 for a
model stuck on one token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError


def repeated_ngram_fraction(ids: Sequence[int], n: int = 4) -> float:
    """Fraction of the ``n``-grams of ``ids`` that repeat an earlier one (0.0 when none exist)."""
    if n < 1:
        raise ConfigError(f"n-gram length must be at least 1, got {n}")
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


@dataclass
class Continuation:
    """One prompt's greedy continuation: its text, token ids and repeated-4-gram fraction."""

    prompt: str
    text: str
    token_ids: list[int]
    repeated_4gram_fraction: float


@dataclass
class ContinuationSet:
    """Greedy continuations of several prompts and their mean repeated-4-gram fraction."""

    samples: list[Continuation]

    @property
    def repeated_4gram_fraction(self) -> float:
        """Mean over the prompts (0.0 for no prompts)."""
        if not self.samples:
            return 0.0
        return sum(s.repeated_4gram_fraction for s in self.samples) / len(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": [asdict(s) for s in self.samples],
            "repeated_4gram_fraction": self.repeated_4gram_fraction,
        }


def greedy_continuations(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, new_tokens: int = 40
) -> ContinuationSet:
    """Greedy (``do_sample=False``) continuations of ``prompts`` by a loaded causal LM.

    Each prompt is encoded with the tokenizer's special tokens (as a user would), the
    continuation excludes the prompt and is decoded without special tokens.
    """
    import torch

    if new_tokens < 1:
        raise ConfigError(f"new_tokens must be at least 1, got {new_tokens}")
    model.eval()
    samples = []
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        ids = [int(t) for t in output[0, encoded["input_ids"].shape[1] :]]
        samples.append(
            Continuation(
                prompt=prompt,
                text=str(tokenizer.decode(ids, skip_special_tokens=True)),
                token_ids=ids,
                repeated_4gram_fraction=repeated_ngram_fraction(ids, 4),
            )
        )
    return ContinuationSet(samples)
