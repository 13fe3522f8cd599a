"""Copy / induction probe (Olsson et al. 2022, "In-context Learning and Induction Heads").

A span of ``span_length`` random tokens is repeated once: ``[BOS] s_1 .. s_n s_1 .. s_n``. A model
whose induction heads work predicts the second copy from the first, so its loss there falls far
below chance (``ln`` of the number of candidate tokens); a model that cannot use its context
scores the same on both copies.

Both copies are scored on the same ``n - 1`` bigrams: the loss of ``s_2 .. s_n`` given what came
before, in each copy. (The first token of each copy is left out: nothing in the context
predicts it.) So ``second_copy_loss / first_copy_loss`` is exactly 1 for a model that ignores
its context, and the first copy's loss is the model's no-context baseline on these tokens.

Tokens are drawn uniformly from the ids below ``min(len(tokenizer), vocab_size)`` except the
tokenizer's special tokens, with a ``torch.Generator`` seeded with ``seed``; trial ``k`` uses the
``k``-th draw, so more trials extend fewer trials' spans without changing them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .._progress import progress
from ..errors import ConfigError
from .retrieval_lm import bos_ids, check_length, token_losses

DEFAULT_SPAN = 256
DEFAULT_COPY_TRIALS = 4


@dataclass(frozen=True)
class CopyTrial:
    """Mean losses (nats) on the two copies of one random span."""

    first_copy_loss: float
    second_copy_loss: float


@dataclass
class CopyProbeResult:
    """Mean losses on the first and second copy over the trials, and what chance would score."""

    span_length: int
    trials: int
    seed: int
    candidates: int  # token ids the spans are drawn from
    bos_token_id: int | None
    beyond_position_limit: bool
    per_trial: list[CopyTrial]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CopyProbeResult:
        """The result back from :meth:`to_dict`'s JSON."""
        keys = ("span_length", "trials", "seed", "candidates", "bos_token_id")
        return cls(
            **{k: data[k] for k in keys},
            beyond_position_limit=data["beyond_position_limit"],
            per_trial=[CopyTrial(**t) for t in data["per_trial"]],
        )

    @property
    def first_copy_loss(self) -> float:
        return sum(t.first_copy_loss for t in self.per_trial) / len(self.per_trial)

    @property
    def second_copy_loss(self) -> float:
        return sum(t.second_copy_loss for t in self.per_trial) / len(self.per_trial)

    @property
    def relative_loss(self) -> float:
        """Second-copy loss over first-copy loss: 1.0 when the context is not used at all."""
        return self.second_copy_loss / self.first_copy_loss

    @property
    def chance_loss(self) -> float:
        """``ln(candidates)``: the loss of a uniform guess over the candidate tokens."""
        return math.log(self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_length": self.span_length,
            "trials": self.trials,
            "seed": self.seed,
            "candidates": self.candidates,
            "bos_token_id": self.bos_token_id,
            "beyond_position_limit": self.beyond_position_limit,
            "first_copy_loss": self.first_copy_loss,
            "second_copy_loss": self.second_copy_loss,
            "relative_loss": self.relative_loss,
            "chance_loss": self.chance_loss,
            "per_trial": [asdict(t) for t in self.per_trial],
        }


def candidate_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids the random spans are drawn from: the shared vocabulary minus special tokens."""
    vocab = min(len(tokenizer), int(model.config.vocab_size))
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    return [i for i in range(vocab) if i not in special]


def validate_copy_args(span_length: int, trials: int) -> None:
    """Check the copy-probe arguments.

    Raises:
        ConfigError: ``span_length`` < 2 or ``trials`` < 1.
    """
    if span_length < 2:
        raise ConfigError(f"copy-probe span length must be at least 2 tokens, got {span_length}")
    if trials < 1:
        raise ConfigError(f"copy-probe trials must be at least 1, got {trials}")


def copy_probe(
    model: Any,
    tokenizer: Any,
    *,
    span_length: int = DEFAULT_SPAN,
    trials: int = DEFAULT_COPY_TRIALS,
    seed: int = 0,
) -> CopyProbeResult:
    """Mean loss on the first and the second copy of repeated random token spans.

    Args:
        model: a loaded causal LM.
        tokenizer: its tokenizer (for BOS and the special tokens to leave out).
        span_length: tokens per span; the sequence is ``[BOS] + 2 * span_length`` tokens.
        trials: spans, one sequence each.
        seed: seeds the spans.

    Raises:
        ConfigError: ``span_length`` < 2, ``trials`` < 1, or a sequence beyond a learned position
            table.
    """
    import torch

    validate_copy_args(span_length, trials)
    bos = bos_ids(tokenizer)
    length = len(bos) + 2 * span_length
    beyond = check_length(model, length, what="copy-probe sequence length")
    pool = torch.tensor(candidate_ids(model, tokenizer))
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    n, b = span_length, len(bos)
    per_trial = []
    for _ in progress(range(trials), desc="copy probe", unit="span"):
        span = pool[torch.randint(len(pool), (n,), generator=generator)].tolist()
        ids = torch.tensor([bos + span + span], device=device)
        # losses[i] is the loss of token i + 1: s_2..s_n of the first copy sit at b+1..b+n-1
        losses = token_losses(model, ids)[0]
        first = losses[b : b + n - 1]
        second = losses[b + n : b + 2 * n - 1]
        per_trial.append(CopyTrial(float(first.mean()), float(second.mean())))
    return CopyProbeResult(
        span_length=span_length,
        trials=trials,
        seed=seed,
        candidates=len(pool),
        bos_token_id=bos[0] if bos else None,
        beyond_position_limit=beyond,
        per_trial=per_trial,
    )
