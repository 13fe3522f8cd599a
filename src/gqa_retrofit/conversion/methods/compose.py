"""One conversion pipeline shared by every data-aware method.

``KV pooling (mean | align+mean | shared PCA head) → query-head selection → o_proj refit``.
Each registered method is this pipeline with fixed choices.
"""

from __future__ import annotations

from typing import Any, Literal

from ...arch.canonical import AttentionWeights
from ...errors import ConfigError
from ..pooling import HeadTarget, PoolResult, check_target, contiguous_groups, mean_pooling
from .alignment import align_heads
from .query_heads import HeadSelection, select_query_heads
from .refit import refit_output
from .shared_head import pca_pool

KVPooling = Literal["mean", "align", "pca"]


def convert_attention(
    weights: AttentionWeights,
    target: HeadTarget,
    calibration: Any,
    *,
    kv: KVPooling = "pca",
    refit: bool = True,
    heads_by: HeadSelection = "importance",
) -> PoolResult:
    """Convert one layer's attention to ``target`` heads with calibration data.

    Args:
        weights: the source layer in canonical form.
        target: KV heads (and optionally query heads) after conversion.
        calibration: the layer's
            :class:`~gqa_retrofit.conversion.calibration.LayerCalibration`.
        kv: how KV heads are merged: ``"mean"``, ``"align"`` (orthogonal alignment, then mean)
            or ``"pca"`` (shared head by weighted PCA).
        refit: refit o_proj by least squares against the original attention output.
        heads_by: how query heads are chosen when ``target.heads`` is smaller.

    Returns:
        The converted weights and a JSON-able record of what was done.

    Raises:
        ConfigError: the target is invalid for this layer, or calibration data is missing.
    """
    check_target(weights, target)
    new_h = target.heads if target.heads is not None else weights.heads
    if new_h > weights.heads:
        raise ConfigError(
            f"heads={new_h} exceeds the source's {weights.heads} query heads; query heads can "
            "only be reduced"
        )
    if target.kv_heads >= weights.kv_heads and new_h == weights.heads:
        # Same geometry (identity) or expansion by repetition: nothing to learn from data.
        result = mean_pooling(weights, HeadTarget(target.kv_heads))
        return PoolResult(result.weights, {"kv": "mean", **result.record})
    needs_data = kv != "mean" or refit or heads_by == "importance"
    if calibration is None and needs_data:
        raise ConfigError("this pooling method needs calibration text (--calibration PATH)")
    record: dict[str, Any] = {"kv": kv}
    pooled = weights
    if target.kv_heads < weights.kv_heads:
        groups = contiguous_groups(weights.kv_heads, target.kv_heads)
        record["groups"] = groups
        if kv == "pca":
            pooled, record["pca"] = pca_pool(
                weights, groups, calibration.inputs, keys=not calibration.qk_norm
            )
        else:
            if kv == "align":
                pooled, record["alignment"] = align_heads(weights, groups, calibration.inputs)
            pooled = mean_pooling(pooled, HeadTarget(target.kv_heads)).weights
    if new_h < pooled.heads:
        pooled, record["query_heads"] = select_query_heads(
            pooled, new_h, calibration, by=heads_by, refit=refit
        )
    if refit:
        pooled, record["refit"] = refit_output(pooled, calibration)
    return PoolResult(pooled, record)
