"""Learning-rate schedules as pure functions of the step (so resuming needs only the step).

- ``wsd`` (warmup-stable-decay): linear warmup, constant peak, linear decay to
  ``min_lr_ratio * lr`` over the last ``decay_fraction`` of the steps.
- ``cosine``: linear warmup, then cosine decay from the peak to ``min_lr_ratio * lr``.
"""

from __future__ import annotations

import math


def lr_multiplier(
    step: int,
    total_steps: int,
    *,
    schedule: str,
    warmup: int,
    decay_fraction: float = 0.2,
    min_lr_ratio: float = 0.1,
) -> float:
    """Multiplier of the peak learning rate for optimizer step ``step`` (0-based).

    Raises:
        ValueError: ``schedule`` is not ``wsd`` or ``cosine``.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "wsd":
        decay_steps = max(1, round(decay_fraction * total_steps)) if decay_fraction > 0 else 0
        decay_start = total_steps - decay_steps
        if decay_steps == 0 or step < decay_start:
            return 1.0
        progress = (step - decay_start + 1) / decay_steps
        return 1.0 - (1.0 - min_lr_ratio) * min(1.0, progress)
    if schedule == "cosine":
        span = max(1, total_steps - warmup)
        progress = min(1.0, (step - warmup + 1) / span)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}: choose wsd or cosine")
