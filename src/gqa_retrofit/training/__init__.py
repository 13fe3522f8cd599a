"""Continued training (uptraining) of retrofitted models, with distillation, on accelerate.

Names are imported lazily so that ``gqa_retrofit.training.options`` (used by the CLI parser)
does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "recipe",
    "TrainingRecipe": "recipe",
    "TrainingReport": "loop",
    "TrainOptions": "options",
    "load_config": "options",
    "LossParts": "loss",
    "distill_kl": "loss",
    "next_token_ce": "loss",
    "training_loss": "loss",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
