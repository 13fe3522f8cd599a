from __future__ import annotations

import pytest
import torch

from gqa_retrofit.training.loss import distill_kl, next_token_ce, training_loss
from tiny_models import tiny_model


def _logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = tiny_model("llama", seed=0)
    ids = torch.randint(3, 100, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    return out.logits, ids, out.loss


def test_cross_entropy_matches_the_models_own_loss() -> None:
    logits, ids, hf_loss = _logits()
    assert torch.allclose(next_token_ce(logits, ids), hf_loss, atol=1e-6)


def test_kl_is_zero_when_student_equals_teacher() -> None:
    logits, ids, _ = _logits()
    assert float(distill_kl(logits, logits.clone())) == 0.0
    parts = training_loss(logits, ids, logits.clone(), distill_weight=0.7, temperature=2.0)
    assert float(parts.kl) == 0.0
    assert torch.allclose(parts.loss, 0.3 * parts.ce)


def test_loss_weighting_and_temperature() -> None:
    logits, ids, _ = _logits()
    teacher = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    a, t = 0.25, 2.0
    parts = training_loss(logits, ids, teacher, distill_weight=a, temperature=t)
    # reference KL computed by hand: sum_v p_t (log p_t - log p_s), averaged over positions
    p_t = torch.softmax(teacher[:, :-1] / t, -1)
    kl_ref = (p_t * (p_t.log() - torch.log_softmax(logits[:, :-1] / t, -1))).sum(-1).mean()
    assert float(parts.kl) == pytest.approx(float(kl_ref), rel=1e-5)
    assert float(parts.kl) > 0.01
    assert float(parts.loss) == pytest.approx(
        (1 - a) * float(parts.ce) + a * t * t * float(kl_ref), rel=1e-5
    )
    only_ce = training_loss(logits, ids, teacher, distill_weight=0.0)
    assert float(only_ce.loss) == pytest.approx(float(parts.ce))
    only_kl = training_loss(logits, ids, teacher, distill_weight=1.0, temperature=1.0)
    assert float(only_kl.loss) == pytest.approx(float(distill_kl(logits, teacher)))


def test_without_teacher_loss_is_cross_entropy() -> None:
    logits, ids, hf_loss = _logits()
    parts = training_loss(logits, ids)
    assert parts.kl is None
    assert torch.allclose(parts.loss, hf_loss, atol=1e-6)
