"""Continued training (uptraining) of retrofitted models, with distillation, on accelerate.

Names are imported lazily so that ``gqa_retrofit.training.options`` (used by the CLI parser)
does not pull in torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
