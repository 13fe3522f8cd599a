"""Data-aware conversion methods; importing this package registers them.

``pca`` (:data:`DEFAULT_METHOD`) is the measured best default when calibration text is given
(``pca-refit`` matches it in domain but generalises worse out of domain with little data).
"""

from __future__ import annotations

from . import alignment, refit, shared_head
from .compose import convert_attention
from .query_heads import select_query_heads

DEFAULT_METHOD = "pca"

__all__ = [
    "DEFAULT_METHOD",
    "alignment",
    "convert_attention",
    "refit",
    "select_query_heads",
    "shared_head",
]
