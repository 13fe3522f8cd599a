"""Training objective: next-token cross-entropy plus optional KL distillation from a teacher.

With ``A`` = ``distill_weight`` and ``T`` = ``temperature``::

    loss = (1 - A) * CE(student, next tokens) + A * T^2 * KL(teacher_T || student_T)

averaged over the predicted positions (every position but the last of each block). ``T^2``
keeps the gradient scale of the soft term independent of ``T`` (Hinton et al. 2015). Without a
teacher the loss is the plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossParts:
    """The combined loss (with grad) and its detached components."""

    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor | None


def shifted_labels(input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token targets aligned with the logits: ``input_ids[:, 1:]`` and -100 at the end."""
    labels = input_ids.new_full(input_ids.shape, -100)
    labels[:, :-1] = input_ids[:, 1:]
    return labels


def next_token_ce(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``input_ids[:, 1:]`` from ``logits[:, :-1]``.

    The targets are shifted rather than the logits, so the ``[B, S, V]`` logits are used as a
    view (slicing them would copy the largest tensor of the step, forward and backward).
    """
    vocab = logits.shape[-1]
    return F.cross_entropy(
        logits.reshape(-1, vocab).float(), shifted_labels(input_ids).reshape(-1), ignore_index=-100
    )


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean per-token KL(teacher || student) of the temperature-softened distributions.

    Positions are the same as for :func:`next_token_ce`: the last position of a block predicts
    nothing, so its term is subtracted from the sum over all positions (no sliced copies).
    """
    batch, seq, vocab = student_logits.shape
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    total = F.kl_div(s.reshape(-1, vocab), t.reshape(-1, vocab), log_target=True, reduction="sum")
    last = F.kl_div(s[:, -1], t[:, -1], log_target=True, reduction="sum")
    return (total - last) / (batch * (seq - 1))


def training_loss(
    student_logits: torch.Tensor,
    input_ids: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    distill_weight: float = 0.5,
    temperature: float = 1.0,
) -> LossParts:
    """The weighted objective of the module docstring."""
    ce = next_token_ce(student_logits, input_ids)
    if teacher_logits is None:
        return LossParts(ce, ce.detach(), None)
    kl = distill_kl(student_logits, teacher_logits, temperature)
    loss = (1.0 - distill_weight) * ce + distill_weight * temperature**2 * kl
    return LossParts(loss, ce.detach(), kl.detach())
