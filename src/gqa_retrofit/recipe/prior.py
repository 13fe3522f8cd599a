"""The paper's loss-vs-query-heads law (Appendix I), as a labelled prior.

At a fixed model size the paper fits ``loss(n_h) = a·n_h^b + c`` to its own models (trained
on its own data at context T). These numbers describe *those* models: shown next to a
retrofit plan they indicate the direction and rough size of the effect of fewer query heads
in the paper's setting, not a prediction for another model or for a converted checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRIOR_LABEL = (
    "paper's Appendix I fit loss(n_h) = a*n_h^b + c for its own {size} models at T={context}; "
    "not a prediction for this model"
)


@dataclass(frozen=True)
class HeadsLaw:
    """One Appendix I fit: size and training context of the paper's models, and a, b, c."""

    params: float
    context: int
    a: float
    b: float
    c: float

    def loss(self, heads: int) -> float:
        return self.a * heads**self.b + self.c

    @property
    def label(self) -> str:
        size = f"{self.params / 1e9:g}B" if self.params >= 1e9 else f"{self.params / 1e6:g}M"
        return PRIOR_LABEL.format(size=size, context=self.context)


#: The paper's Appendix I fits with a free c (T = 1K).
PAPER_HEADS_LAWS: tuple[HeadsLaw, ...] = (
    HeadsLaw(470e6, 1024, 0.579, -0.124, 2.473),
    HeadsLaw(680e6, 1024, 0.398, -0.177, 2.583),
    HeadsLaw(1.2e9, 1024, 0.301, -0.227, 2.622),
)


def nearest_heads_law(params: float) -> HeadsLaw:
    """The Appendix I fit whose model size is nearest to ``params`` (in log size)."""
    return min(PAPER_HEADS_LAWS, key=lambda law: abs(math.log(law.params / max(params, 1.0))))


def heads_prior_delta(params: float, heads_from: int, heads_to: int) -> tuple[float, HeadsLaw]:
    """Loss change the paper's nearest-size fit gives for ``heads_from`` → ``heads_to``.

    Returns:
        ``(law.loss(heads_to) − law.loss(heads_from), law)``.
    """
    law = nearest_heads_law(params)
    return law.loss(heads_to) - law.loss(heads_from), law
