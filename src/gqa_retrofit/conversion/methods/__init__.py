"""Data-aware conversion methods; importing this package registers them.

``pca-refit`` (:data:`DEFAULT_METHOD`) is the default when calibration text is given.
"""

from __future__ import annotations

from . import alignment, refit, shared_head
from .compose import convert_attention
from .query_heads import select_query_heads

DEFAULT_METHOD = "pca-refit"

__all__ = [
    "DEFAULT_METHOD",
    "alignment",
    "convert_attention",
    "refit",
    "select_query_heads",
    "shared_head",
]
