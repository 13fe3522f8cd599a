"""The attention geometry of a decoder: the one type every part uses for it.

:class:`Geometry` holds what a retrofit changes and what everything else is measured by:
layers, width, query heads, KV heads and the head size. The converter reads it from a
config (:func:`gqa_retrofit.arch.layout.attention_geometry`), the card from a manifest, and the
richer shapes extend it with what their own part needs: the estimator's
``cost.config_reader.ModelShape`` (FFN, vocabulary, windows, MoE, ...), the recipe's
``recipe.aspect.PaperShape`` (the paper's FFN width) and the training memory plan's
``training.memory_plan.TrainingShape`` (parameter counts). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Geometry:
    """Layers, hidden size and head geometry of a model, as the model really builds it."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def q_size(self) -> int:
        """Width of the query projection (``heads * head_dim``)."""
        return self.heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of the key (and of the value) projection (``kv_heads * head_dim``)."""
        return self.kv_heads * self.head_dim

    def heads_dict(self) -> dict[str, int]:
        """``{"heads", "kv_heads", "head_dim"}``: how manifests and reports record the heads."""
        return {"heads": self.heads, "kv_heads": self.kv_heads, "head_dim": self.head_dim}


def check_geometry(heads: int, kv_heads: int, head_dim: int, *, what: str = "config") -> None:
    """Validate a head geometry.

    Raises:
        ConfigError: a value is not positive, or ``heads`` is not a multiple of ``kv_heads``.
    """
    for name, value in (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{what}: {name} must be a positive integer, got {value!r}")
    if heads % kv_heads:
        raise ConfigError(
            f"{what}: heads ({heads}) must be a multiple of kv_heads ({kv_heads}); valid kv_heads: "
            + ", ".join(str(k) for k in range(1, heads + 1) if heads % k == 0)
        )
