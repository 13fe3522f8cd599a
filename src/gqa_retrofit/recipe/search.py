"""The recipe's search (Section 4.1): candidates, cost at the deployment context, Z, argmin.

For each candidate head configuration (n_h, n_kv) with a fitted loss law:

1. ``N* = a / (target − E)^(1/b)``: the smallest model reaching the target loss
   (:meth:`ScalingFit.params_for_loss`);
2. (L, d) for N* from the aspect-ratio table (:func:`shape_for_params`, Appendix B.1);
3. the paper's costs at the deployment context T, from :mod:`gqa_retrofit.cost.paper`:
   ``C = C_infer(T) = 2N + 4·T·L·d_h·n_h`` (eq. 3, decode FLOPs per token) and
   ``M = M_infer(T) = N + 2·T·L·d_h·n_kv`` (eq. 4, values);
4. ``Z = λ·M^α + (1−λ)·C^β`` (the paper's weights by default,
   :data:`gqa_retrofit.cost.paper.PAPER_Z_WEIGHTS`);

and the recommendation is the argmin of Z. ``N`` in the costs is N* itself (the paper's N);
the exact parameter count of the rounded (L, d) shape is reported next to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._markdown import markdown_table
from ..cost.paper import Z_ALPHA, Z_BETA, Z_LAMBDA, c_infer, m_infer, z_objective
from ..errors import ConfigError, DataError
from .aspect import PAPER_ASPECT_TABLE, PAPER_HEAD_DIM, AspectRow, Sizing, model_shape
from .scaling import ScalingFit

#: The paper's candidate head counts (Section 4.1): powers of two up to 32.
PAPER_HEAD_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True, order=True)
class HeadConfig:
    """A head configuration: ``heads`` query heads sharing ``kv_heads`` KV heads."""

    heads: int
    kv_heads: int

    def __post_init__(self) -> None:
        if self.heads <= 0 or self.kv_heads <= 0:
            raise ConfigError(
                f"invalid head configuration {self.heads}:{self.kv_heads}: heads and kv_heads "
                "must be positive integers"
            )
        if self.kv_heads > self.heads:
            raise ConfigError(
                f"invalid head configuration {self.heads}:{self.kv_heads}: kv_heads must be "
                "<= heads"
            )

    @property
    def label(self) -> str:
        return f"{self.heads}:{self.kv_heads}"

    @classmethod
    def parse(cls, text: str) -> HeadConfig:
        """Parse ``"HEADS:KV_HEADS"`` (e.g. ``"32:8"``).

        Raises:
            ConfigError: not two positive integers separated by a colon, or kv_heads > heads.
        """
        parts = text.strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"invalid head configuration {text!r}: use HEADS:KV_HEADS, e.g. 32:8")
        return cls(int(parts[0]), int(parts[1]))


def candidate_head_configs(values: Iterable[int] = PAPER_HEAD_COUNTS) -> list[HeadConfig]:
    """All (n_h, n_kv) with both in ``values`` and n_kv <= n_h (21 for the paper's list).

    Raises:
        ConfigError: a value is not a positive integer, or the list is empty.
    """
    counts = sorted(set(values))
    if not counts:
        raise ConfigError("empty list of head counts: give at least one positive integer")
    if any(not isinstance(v, int) or v <= 0 for v in counts):
        raise ConfigError(f"invalid head counts {counts}: all must be positive integers")
    return [HeadConfig(h, k) for h in counts for k in counts if k <= h]


@dataclass(frozen=True)
class Objective:
    """Weights of ``Z = λ·M^α + (1−λ)·C^β`` (Section 4.1 defaults)."""

    lam: float = Z_LAMBDA
    alpha: float = Z_ALPHA
    beta: float = Z_BETA

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"invalid lambda {self.lam}: must lie in [0, 1]")
        for name, value in (("alpha", self.alpha), ("beta", self.beta)):
            if not value > 0 or not math.isfinite(value):
                raise ConfigError(f"invalid {name} {value}: must be a positive number")

    def z(self, memory: float, flops: float) -> float:
        return z_objective(memory, flops, lam=self.lam, alpha=self.alpha, beta=self.beta)


@dataclass(frozen=True)
class CostPoint:
    """The paper's inference costs of one model at context T (values and FLOPs)."""

    memory: float  # M_infer(T), values (eq. 4)
    flops: float  # C_infer(T), FLOPs per decoded token (eq. 3)


def paper_costs(
    params: float,
    layers: int,
    heads: int,
    kv_heads: int,
    context: int,
    *,
    head_dim: int = PAPER_HEAD_DIM,
) -> CostPoint:
    """C_infer and M_infer of the paper (eqs. 3, 4) through :mod:`gqa_retrofit.cost.paper`."""
    return CostPoint(
        memory=m_infer(params, context, layers, head_dim, kv_heads),
        flops=c_infer(params, context, layers, head_dim, heads),
    )


def percent_change(new: float, old: float) -> float:
    """``(new / old − 1)·100``: negative numbers are savings."""
    return (new / old - 1.0) * 100.0


@dataclass
class Recommendation:
    """One costed candidate of the search."""

    heads: int
    kv_heads: int
    head_dim: int
    params: float  # N*: non-embedding parameters needed to reach the target loss
    layers: int
    hidden: int
    intermediate: int
    params_shape: int  # exact non-embedding parameters of the rounded (L, d) shape
    context: int
    memory: float  # M_infer(T) in values
    memory_bytes: float  # memory · bytes per value
    flops: float  # C_infer(T): decode FLOPs per token at position T
    z: float
    predicted_loss: float  # the fit at N* (equals the target up to rounding)
    fit: ScalingFit
    extrapolation: float  # N* / largest fitted size (> 1: beyond the runs)
    params_log_stderr: float | None = None  # one-sigma uncertainty of log N* from the fit
    pareto: bool = False
    rank: int = 0
    change_percent: dict[str, float] | None = None  # vs the baseline, negative = cheaper

    @property
    def config(self) -> HeadConfig:
        return HeadConfig(self.heads, self.kv_heads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "params": self.params,
            "layers": self.layers,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
            "params_shape": self.params_shape,
            "context": self.context,
            "memory": self.memory,
            "memory_bytes": self.memory_bytes,
            "flops": self.flops,
            "z": self.z,
            "predicted_loss": self.predicted_loss,
            "extrapolation": self.extrapolation,
            "params_log_stderr": self.params_log_stderr,
            "pareto": self.pareto,
            "change_percent": self.change_percent,
            "fit": self.fit.to_dict(),
        }


@dataclass
class RecipeResult:
    """Outcome of the search: ranked candidates (best first), what could not reach the target."""

    recommendations: list[Recommendation]
    unreachable: dict[str, str]  # head config label -> reason
    target_loss: float
    context: int
    objective: Objective
    baseline: Recommendation | None = None
    fits: dict[HeadConfig, ScalingFit] = field(default_factory=dict)
    sizing: Sizing = "interpolate"
    refused_fits: dict[str, str] = field(default_factory=dict)  # label -> why no fit
    serving: dict[str, Any] | None = None  # per-device KV at tp/dcp (recommend(tp=, dcp=))

    @property
    def best(self) -> Recommendation:
        return self.recommendations[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_loss": self.target_loss,
            "context": self.context,
            "objective": {
                "lambda": self.objective.lam,
                "alpha": self.objective.alpha,
                "beta": self.objective.beta,
            },
            "memory_unit": "values (paper eq. 4); memory_bytes = values x bytes per value",
            "flops_unit": "FLOPs per decoded token at position T (paper eq. 3, 2 per MAC)",
            "sizing": self.sizing,
            "baseline": None if self.baseline is None else self.baseline.config.label,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "unreachable": self.unreachable,
            "refused_fits": self.refused_fits,
            "fits": {c.label: f.to_dict() for c, f in sorted(self.fits.items())},
            "serving": self.serving,
        }

    def to_markdown(self, top: int = 0) -> str:
        """The result as ``recommend`` prints it: the fits, the ranked table (the first ``top``
        rows; 0: all), what was left out and the best configuration (the last line)."""
        o = self.objective
        fits = [
            [
                c.label,
                f"{f.a:.3g}",
                f"{f.b:.3f}±{f.b_stderr:.3f}",
                f"{f.e:.4f}±{f.e_stderr:.4f}",
                f"{f.r2:.5f}",
                f.points,
            ]
            for c, f in sorted(self.fits.items())
        ]
        savings = self.baseline is not None
        headers = ["rank", "heads:kv", "N*", "±%", "L", "d", "memory GB", "FLOPs/tok", "Z"]
        headers += ["pareto"] + (["dM %", "dC %", "dZ %"] if savings else [])
        rows = []
        for rec in self.recommendations[:top] if top > 0 else self.recommendations:
            sigma = "" if rec.params_log_stderr is None else f"{100 * rec.params_log_stderr:.0f}"
            row = [rec.rank, rec.config.label, f"{rec.params:.3g}", sigma, rec.layers, rec.hidden]
            row += [f"{rec.memory_bytes / 1e9:.3f}", f"{rec.flops:.3g}", f"{rec.z:.1f}"]
            row += ["*" if rec.pareto else ""]
            if savings:
                changes = rec.change_percent or {}
                row += [f"{changes[k]:+.1f}" for k in ("memory", "flops", "z")]
            rows.append(row)
        lines = [
            f"target loss {self.target_loss:g} at context {self.context:,}; Z = "
            f"{o.lam:g}*M^{o.alpha:.3g} + {1 - o.lam:.3g}*C^{o.beta:.3g} "
            "(M: values, eq. 4; C: decode FLOPs/token, eq. 3)",
            "",
            "fits: loss(N) = (a/N)^b + E",
            "",
            markdown_table(["heads:kv", "a", "b", "E", "R2", "runs"], fits, "lrrrrr"),
            "",
            markdown_table(headers, rows, "rl" + "r" * 7 + "l" + "r" * (3 if savings else 0)),
            "",
        ]
        if self.baseline is not None:
            lines.append(
                f"dM, dC, dZ: % change against the baseline {self.baseline.config.label} "
                "(negative = cheaper)"
            )
        for label, reason in {**self.unreachable, **self.refused_fits}.items():
            lines.append(f"left out {label}: {reason}")
        best = self.best
        lines.append("±%: one-sigma uncertainty of N* from the fit (delta method)")
        lines.append(
            f"best: heads {best.heads}, kv_heads {best.kv_heads}, N* {best.params:.4g} "
            f"(L {best.layers}, d {best.hidden}, head_dim {best.head_dim})"
        )
        return "\n".join(lines)


def evaluate_candidate(
    config: HeadConfig,
    fit: ScalingFit,
    target_loss: float,
    context: int,
    *,
    objective: Objective = Objective(),
    head_dim: int = PAPER_HEAD_DIM,
    bytes_per_value: float = 2.0,
    table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE,
    sizing: Sizing = "interpolate",
) -> Recommendation | None:
    """Cost one candidate: N* from its fit, (L, d) from the table, M, C and Z at ``context``.

    Returns ``None`` when the target is at or below the candidate's fitted floor E.
    """
    n_star = fit.params_for_loss(target_loss)
    if n_star is None:
        return None
    shape = model_shape(
        n_star, config.heads, config.kv_heads, sizing=sizing, head_dim=head_dim, table=table
    )
    cost = paper_costs(
        n_star, shape.layers, config.heads, config.kv_heads, context, head_dim=head_dim
    )
    return Recommendation(
        heads=config.heads,
        kv_heads=config.kv_heads,
        head_dim=head_dim,
        params=n_star,
        layers=shape.layers,
        hidden=shape.hidden,
        intermediate=shape.intermediate,
        params_shape=shape.non_embedding_params,
        context=context,
        memory=cost.memory,
        memory_bytes=cost.memory * bytes_per_value,
        flops=cost.flops,
        z=objective.z(cost.memory, cost.flops),
        predicted_loss=fit.loss(n_star),
        fit=fit,
        extrapolation=n_star / fit.max_params,
        params_log_stderr=fit.params_log_stderr(target_loss),
    )


def pareto_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """True for each point no other point dominates (<= in both coordinates, < in one)."""
    mask = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 <= y) and (x2 < x or y2 < y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        mask.append(not dominated)
    return mask


def search(
    fits: Mapping[HeadConfig, ScalingFit],
    target_loss: float,
    context: int,
    *,
    objective: Objective = Objective(),
    candidates: Iterable[HeadConfig] | None = None,
    baseline: HeadConfig | None = None,
    head_dim: int = PAPER_HEAD_DIM,
    bytes_per_value: float = 2.0,
    table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE,
    sizing: Sizing = "interpolate",
) -> RecipeResult:
    """Rank the candidates with a fit by Z at ``context`` (best first), mark the Pareto front
    in (memory, FLOPs) and the savings against ``baseline``.

    Args:
        fits: the fitted loss law of each head configuration.
        target_loss: the loss every candidate must reach.
        context: deployment context length T.
        objective: λ, α, β of Z.
        candidates: restrict the search to these configurations (default: every fitted one).
        baseline: a fitted configuration to compare against (``change_percent``: percent
            change, negative = cheaper).
        sizing: ``"interpolate"`` (Appendix B.1) or ``"table"`` (nearest row of the paper's
            table, for the paper's nominal-size comparisons).

    Raises:
        ConfigError: invalid target or context, a baseline or candidate list with no fit.
        DataError: no candidate reaches the target loss.
    """
    if not target_loss > 0 or not math.isfinite(target_loss):
        raise ConfigError(f"invalid target loss {target_loss!r}: must be a positive number")
    if context <= 0:
        raise ConfigError(f"invalid context {context!r}: must be a positive integer")
    chosen = sorted(fits) if candidates is None else sorted(set(candidates) & set(fits))
    if not chosen:
        raise ConfigError(
            "no candidate head configuration has runs to fit: the runs hold "
            f"{', '.join(c.label for c in sorted(fits)) or 'none'}"
        )
    if baseline is not None and baseline not in fits:
        raise ConfigError(
            f"baseline {baseline.label} has no runs to fit: choose one of "
            f"{', '.join(c.label for c in sorted(fits))}"
        )
    kwargs: dict[str, Any] = dict(
        objective=objective,
        head_dim=head_dim,
        bytes_per_value=bytes_per_value,
        table=table,
        sizing=sizing,
    )
    ranked: list[Recommendation] = []
    unreachable: dict[str, str] = {}
    for config in chosen:
        try:
            rec = evaluate_candidate(config, fits[config], target_loss, context, **kwargs)
        except ConfigError as err:  # N* too large for any shape of the table
            unreachable[config.label] = f"no model shape for N*: {err}"
            continue
        if rec is None:
            unreachable[config.label] = (
                f"target loss {target_loss} is at or below the fitted floor "
                f"E = {fits[config].e:.4f}"
            )
        else:
            ranked.append(rec)
    if not ranked:
        floor = min(fits[c].e for c in chosen)
        raise DataError(
            f"target loss {target_loss} is unreachable: every candidate's fitted floor E is at "
            f"or above it, or it needs a model beyond the aspect table (lowest E = "
            f"{floor:.4f}); choose a higher target"
        )
    ranked.sort(key=lambda r: (r.z, r.flops, r.heads, r.kv_heads))
    for rank, (rec, on_front) in enumerate(
        zip(ranked, pareto_mask([(r.memory, r.flops) for r in ranked])), start=1
    ):
        rec.rank = rank
        rec.pareto = on_front
    base = None
    if baseline is not None:
        base = evaluate_candidate(baseline, fits[baseline], target_loss, context, **kwargs)
        if base is None:
            raise DataError(
                f"baseline {baseline.label} cannot reach target loss {target_loss} (fitted floor "
                f"E = {fits[baseline].e:.4f}): choose another baseline or a higher target"
            )
        for rec in ranked:
            rec.change_percent = {
                "params": percent_change(rec.params, base.params),
                "memory": percent_change(rec.memory, base.memory),
                "flops": percent_change(rec.flops, base.flops),
                "z": percent_change(rec.z, base.z),
            }
    return RecipeResult(
        recommendations=ranked,
        unreachable=unreachable,
        target_loss=target_loss,
        context=context,
        objective=objective,
        baseline=base,
        fits=dict(fits),
        sizing=sizing,
    )
