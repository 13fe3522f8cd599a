"""Cost estimation: exact per-model formulas and the paper's quantities.

``estimate(model)`` reads a config (no weights) and returns a :class:`CostReport`;
``cost_shape`` costs an already-read :class:`ModelShape`; ``plot_reports`` draws the curves.
"""

from __future__ import annotations

from .config_reader import ModelShape, check_geometry, read_config
from .formulas import (
    ParamCounts,
    decode_flops,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    memory_bytes,
    param_counts,
    prefill_flops,
    training_flops_per_token,
)
from .plot import plot_reports
from .report import (
    DEFAULT_CONTEXTS,
    ContextCost,
    CostReport,
    cost_shape,
    estimate,
    estimate_what_if,
    reports_to_markdown,
)

__all__ = [
    "DEFAULT_CONTEXTS",
    "ContextCost",
    "CostReport",
    "ModelShape",
    "ParamCounts",
    "check_geometry",
    "cost_shape",
    "decode_flops",
    "estimate",
    "estimate_what_if",
    "kv_cache_bytes",
    "kv_cache_bytes_per_token",
    "memory_bytes",
    "param_counts",
    "plot_reports",
    "prefill_flops",
    "read_config",
    "reports_to_markdown",
    "training_flops_per_token",
]
