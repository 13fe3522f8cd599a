"""``recommend``: the whole recipe from a runs file to a ranked list (Section 4.1)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..cost.paper import Z_ALPHA, Z_BETA, Z_LAMBDA
from ..errors import ConfigError
from .aspect import PAPER_HEAD_DIM, Sizing
from .runs import Run, fit_runs, read_runs, select_context
from .search import HeadConfig, Objective, RecipeResult, search


def recommend(
    runs: str | os.PathLike[str] | Sequence[Run],
    *,
    context: int,
    target_loss: float,
    lam: float = Z_LAMBDA,
    alpha: float = Z_ALPHA,
    beta: float = Z_BETA,
    baseline: HeadConfig | str | None = None,
    candidates: Iterable[HeadConfig] | None = None,
    fit_context: int | None = None,
    head_dim: int = PAPER_HEAD_DIM,
    bytes_per_value: float = 2.0,
    skip_unfittable: bool = False,
    sizing: Sizing = "interpolate",
    kv_dtype: str = "bf16",
    batch: int = 1,
    tp: int = 1,
    dcp: int = 1,
) -> RecipeResult:
    """Fit each head configuration's runs, size and cost every candidate at ``context``, rank
    by ``Z = λ·M^α + (1−λ)·C^β``.

    Args:
        runs: a runs CSV path (see :func:`read_runs`) or a list of :class:`Run`.
        context: the deployment context length T the costs are evaluated at.
        target_loss: the loss every candidate must reach.
        lam, alpha, beta: the objective's weights (default: the paper's, ``PAPER_Z_WEIGHTS``).
        baseline: a configuration (``HeadConfig`` or ``"32:8"``) to report savings against.
        candidates: restrict the search (default: every configuration in the runs).
        fit_context: fit only runs trained at this context (needed when the file mixes them).
        head_dim: d_h of every candidate (paper: 64).
        bytes_per_value: for ``memory_bytes`` (2 = bf16).
        skip_unfittable: leave out configurations whose fit is refused (listed in
            ``refused_fits``) instead of failing.
        sizing: ``"interpolate"`` (Appendix B.1, default) or ``"table"`` (nearest row of the
            paper's aspect table).
        kv_dtype, batch, tp, dcp: serving assumptions of ``result.serving``: each
            candidate's per-device KV bytes at ``context`` with vLLM's replication rule, and a
            warning where its KV heads are fewer than ``tp`` without enough ``dcp``.

    Returns:
        The ranked result, best first.

    Raises:
        DataError: unreadable runs, refused fits, or an unreachable target.
        ConfigError: invalid objective weights, target, context, baseline or candidates.
    """
    objective = Objective(lam=lam, alpha=alpha, beta=beta)
    all_runs = read_runs(runs) if isinstance(runs, (str, os.PathLike)) else list(runs)
    chosen = select_context(all_runs, fit_context)
    fits, refused = fit_runs(chosen, skip_unfittable=skip_unfittable)
    base = HeadConfig.parse(baseline) if isinstance(baseline, str) else baseline
    result = search(
        fits,
        target_loss,
        context,
        objective=objective,
        candidates=candidates,
        baseline=base,
        head_dim=head_dim,
        bytes_per_value=bytes_per_value,
        sizing=sizing,
    )
    result.refused_fits = refused
    result.serving = serving_summary(result, kv_dtype=kv_dtype, batch=batch, tp=tp, dcp=dcp)
    return result


def serving_summary(
    result: RecipeResult, *, kv_dtype: str = "bf16", batch: int = 1, tp: int = 1, dcp: int = 1
) -> dict[str, Any]:
    """Per-device KV of every recommendation at ``tp``/``dcp`` (see
    :func:`gqa_retrofit.cost.serving.serving_costs`), keyed by ``heads:kv_heads``.

    Raises:
        ConfigError: bad tp/dcp/KV dtype/batch.
    """
    from ..cost.serving import serving_costs

    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    by_config = {
        rec.config.label: serving_costs(
            layers=rec.layers,
            heads=rec.heads,
            kv_heads=rec.kv_heads,
            head_dim=rec.head_dim,
            context=result.context,
            kv_dtype_name=kv_dtype,
            batch=batch,
            tp=tp,
            dcp=dcp,
        )
        for rec in result.recommendations
    }
    return {"tp": tp, "dcp": dcp, "kv_dtype": kv_dtype, "batch": batch, "by_config": by_config}
