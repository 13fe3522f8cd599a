"""Registry of head-pooling methods, shared by ``patch_model`` and the checkpoint converter.

A method is one function ``(weights, target, calibration) -> PoolResult`` registered with
:func:`register_pooling` under one entry: its name, what it pools, whether it refits
``o_proj``, whether it needs calibration text, a summary and a reference. It receives one
layer's attention in canonical form (:class:`~gqa_retrofit.arch.canonical.AttentionWeights`)
and returns the same form with ``target.kv_heads`` KV heads (and ``target.heads`` query heads),
plus a JSON-able record of what it did (grouping, permutations) for the manifest.

``mean`` is registered here; the data-aware methods are the table of
:mod:`gqa_retrofit.conversion.methods`. A new method is one registered function (or one row of
that table) and its tests: see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..arch.canonical import AttentionWeights
from ..errors import ConfigError


@dataclass(frozen=True)
class HeadTarget:
    """Head counts after pooling. ``heads`` None keeps the query heads."""

    kv_heads: int
    heads: int | None = None


@dataclass
class PoolResult:
    weights: AttentionWeights
    record: dict[str, Any] = field(default_factory=dict)


class PoolingFn(Protocol):
    def __call__(
        self, weights: AttentionWeights, target: HeadTarget, calibration: Any | None = None
    ) -> PoolResult: ...


@dataclass(frozen=True)
class PoolingMethod:
    """One registry entry."""

    name: str
    fn: PoolingFn
    pools: str  # how the KV heads of a group are merged (e.g. "mean", "pca")
    refit: bool  # o_proj refit by least squares against the original attention output
    needs_calibration: bool
    summary: str
    reference: str


_REGISTRY: dict[str, PoolingMethod] = {}


def register_pooling(
    name: str,
    *,
    pools: str,
    refit: bool = False,
    needs_calibration: bool = False,
    summary: str = "",
    reference: str = "",
) -> Callable[[PoolingFn], PoolingFn]:
    """Decorator registering a pooling method under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(fn: PoolingFn) -> PoolingFn:
        if name in _REGISTRY:
            raise ValueError(f"pooling method {name!r} is already registered")
        _REGISTRY[name] = PoolingMethod(
            name, fn, pools, refit, needs_calibration, summary, reference
        )
        return fn

    return decorator


def pooling_methods() -> dict[str, PoolingMethod]:
    """All registered methods by name."""
    return dict(_REGISTRY)


def get_pooling(name: str) -> PoolingMethod:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown pooling method {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def check_target(weights: AttentionWeights, target: HeadTarget) -> None:
    """Validate a KV-head target against a layer's source geometry.

    KV heads may shrink to a divisor of the source KV heads, or grow to a multiple of them
    (expansion by repetition) that still divides the query heads.
    """
    n_h, n_kv, new_kv = weights.heads, weights.kv_heads, target.kv_heads
    new_h = target.heads if target.heads is not None else n_h
    if new_kv <= 0 or new_h <= 0:
        raise ConfigError(f"head counts must be positive, got heads={new_h} kv_heads={new_kv}")
    if new_h % new_kv:
        raise ConfigError(
            f"kv_heads={new_kv} must divide heads={new_h}; valid: "
            + ", ".join(str(k) for k in range(1, new_h + 1) if new_h % k == 0)
        )
    if new_kv <= n_kv and n_kv % new_kv:
        raise ConfigError(
            f"kv_heads={new_kv} must divide the source's {n_kv} KV heads; valid: "
            + ", ".join(str(k) for k in range(1, n_kv + 1) if n_kv % k == 0)
        )
    if new_kv > n_kv and (new_kv % n_kv or new_h != n_h):
        raise ConfigError(
            f"kv_heads={new_kv} exceeds the source's {n_kv} KV heads: expansion must be a "
            f"multiple of {n_kv} that divides {n_h} query heads"
        )


def contiguous_groups(n_kv: int, new_kv: int) -> list[list[int]]:
    """Source KV heads merged into each new KV head: contiguous groups (GQA paper)."""
    size = n_kv // new_kv
    return [list(range(j * size, (j + 1) * size)) for j in range(new_kv)]


def _mean_heads(t: torch.Tensor | None, groups: list[list[int]]) -> torch.Tensor | None:
    if t is None:
        return None
    acc = t.float()
    return torch.stack([acc[g].mean(dim=0) for g in groups]).to(t.dtype)


def _repeat_heads(t: torch.Tensor | None, times: int) -> torch.Tensor | None:
    return None if t is None else t.repeat_interleave(times, dim=0)


@register_pooling(
    "mean",
    pools="mean",
    summary="mean of the K and V heads of each contiguous group",
    reference="Ainslie et al. 2023, GQA (arXiv 2305.13245)",
)
def mean_pooling(
    weights: AttentionWeights, target: HeadTarget, calibration: Any | None = None
) -> PoolResult:
    """Mean-pool contiguous groups of KV heads; expanding (more KV heads) repeats each head.

    Query heads are kept (query-head reduction needs a method that measures importance).
    """
    if target.heads is not None and target.heads != weights.heads:
        raise ConfigError(
            f"method 'mean' keeps the {weights.heads} query heads; reducing them to "
            f"{target.heads} needs an importance-based method"
        )
    check_target(weights, target)
    n_kv, new_kv = weights.kv_heads, target.kv_heads
    if new_kv >= n_kv:
        times = new_kv // n_kv
        pooled = weights.replace(
            k=_repeat_heads(weights.k, times),
            v=_repeat_heads(weights.v, times),
            k_bias=_repeat_heads(weights.k_bias, times),
            v_bias=_repeat_heads(weights.v_bias, times),
        )
        return PoolResult(pooled, {"expanded_by": times})
    groups = contiguous_groups(n_kv, new_kv)
    pooled = weights.replace(
        k=_mean_heads(weights.k, groups),
        v=_mean_heads(weights.v, groups),
        k_bias=_mean_heads(weights.k_bias, groups),
        v_bias=_mean_heads(weights.v_bias, groups),
    )
    return PoolResult(pooled, {"groups": groups})
