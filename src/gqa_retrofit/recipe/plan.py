"""``plan``: the head configurations a retrofit of an existing checkpoint can reach, costed
exactly with the estimator and ranked by the recipe's objective Z.

Reachable configurations (``gqa-retrofit convert SRC OUT --kv-heads K [--heads H]``):

- KV heads K: the divisors of the current KV count (contiguous groups of KV heads are pooled,
  so K must divide it; more KV heads than the source is not a retrofit);
- query heads H: the current count, uniform per-group reductions (``n_kv·r`` for r = 1 … the
  current group size) and divisors of the current count, with K dividing H.

For SmolLM2-135M (9 query / 3 KV heads) this gives 9:3 (current), 9:1, 6:3, 6:1, 3:3, 3:1, 1:1.

Each configuration is costed by :func:`gqa_retrofit.cost.estimate` (``what_if``), so the numbers
equal ``gqa-retrofit estimate MODEL --what-if H:K``. Z uses the exact memory (weights + KV
cache, bytes at ``dtype``) and exact decode FLOPs per token at the context:
``Z = λ·M^α + (1−λ)·C^β``.

Costs alone always favour the most aggressive reduction: a retrofit has no fitted loss law to
hold quality at a target, as the recipe from scratch does. So the *chosen* configuration is the
best Z within the budget among those keeping at least ``min_heads`` query heads (default: all
of them, i.e. a KV-head-only retrofit, the standard GQA uptraining). Query-head reductions are
always listed and costed; the paper's Appendix I law is shown next to them as the paper's fit
for its own models, not a prediction for this one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._markdown import markdown_table
from ..cost.paper import Z_ALPHA, Z_BETA, Z_LAMBDA
from ..errors import ConfigError
from .prior import heads_prior_delta
from .retrieval_evidence import RetrievalEvidence, retrieval_evidence
from .search import HeadConfig, Objective, pareto_mask, percent_change


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def reachable_head_configs(heads: int, kv_heads: int) -> list[HeadConfig]:
    """Head configurations a conversion of an ``heads``:``kv_heads`` model can produce.

    Raises:
        ConfigError: non-positive counts or ``heads`` not divisible by ``kv_heads``.
    """
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise ConfigError(
            f"invalid source geometry {heads}:{kv_heads}: need positive heads divisible by kv_heads"
        )
    group = heads // kv_heads
    head_options = {kv_heads * r for r in range(1, group + 1)} | set(_divisors(heads))
    configs = {
        HeadConfig(h, k) for h in head_options for k in _divisors(kv_heads) if k <= h and h % k == 0
    }
    return sorted(configs, key=lambda c: (-c.heads, -c.kv_heads))


@dataclass
class PlanOption:
    """One reachable configuration with its exact costs at the plan's context."""

    heads: int
    kv_heads: int
    head_dim: int
    current: bool
    params_total: int
    params_non_embedding: int
    kv_cache_bytes: int
    memory_bytes: int  # weights + KV cache at the dtype
    decode_flops: int  # one token at position T
    prefill_flops: int  # the whole context, causal
    z: float
    change_percent: dict[str, float]  # against the current model, negative = cheaper
    pareto: bool = False
    within_budget: bool = True
    rank: int = 0
    prior_loss_delta: float | None = None  # paper's Appendix I law, query heads only
    beyond_max_position: bool = False  # the context exceeds the model's trained length
    retrieval: RetrievalEvidence | None = None  # measured in-context retrieval, if any
    serving: dict[str, Any] | None = None  # per-device KV at the plan's tp/dcp, or "error"

    @property
    def config(self) -> HeadConfig:
        return HeadConfig(self.heads, self.kv_heads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "current": self.current,
            "params": self.params_total,
            "params_non_embedding": self.params_non_embedding,
            "kv_cache_bytes": self.kv_cache_bytes,
            "memory": self.memory_bytes,
            "memory_bytes": self.memory_bytes,
            "flops": self.decode_flops,
            "decode_flops": self.decode_flops,
            "prefill_flops": self.prefill_flops,
            "z": self.z,
            "change_percent": self.change_percent,
            "pareto": self.pareto,
            "within_budget": self.within_budget,
            "paper_prior_loss_delta": self.prior_loss_delta,
            "beyond_max_position": self.beyond_max_position,
            "retrieval": None if self.retrieval is None else self.retrieval.to_dict(),
            "serving": self.serving,
        }


@dataclass
class RetrofitPlan:
    """Ranked reachable configurations of one model, and the chosen one."""

    model: str
    model_type: str
    context: int
    dtype: str
    objective: Objective
    options: list[PlanOption]  # best Z first
    chosen: PlanOption | None
    memory_budget: int | None
    max_flops: float | None
    min_heads: int
    prior_label: str
    command: str | None  # the convert command for the chosen configuration
    serving: dict[str, Any] | None = None  # tp, dcp, kv_dtype, batch of the costs

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_type": self.model_type,
            "context": self.context,
            "dtype": self.dtype,
            "objective": {
                "lambda": self.objective.lam,
                "alpha": self.objective.alpha,
                "beta": self.objective.beta,
                "memory": "exact weights + KV cache bytes at dtype",
                "flops": "exact decode FLOPs per token at position T (2 per MAC)",
            },
            "memory_budget": self.memory_budget,
            "max_flops": self.max_flops,
            "min_heads": self.min_heads,
            "options": [o.to_dict() for o in self.options],
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "command": self.command,
            "paper_prior": self.prior_label,
            "serving": self.serving,
        }

    def retrieval_lines(self) -> list[str]:
        """What is measured about in-context retrieval, and a warning if the choice loses it."""
        found = [o for o in self.options if o.retrieval is not None and not o.current]
        lines = [
            f"retrieval {o.config.label}: {o.retrieval.note}"
            for o in found
            if o.retrieval is not None and o.retrieval.status != "not measured"
        ]
        unmeasured = [o for o in found if o.retrieval and o.retrieval.status == "not measured"]
        if unmeasured and unmeasured[0].retrieval is not None:
            lines.append(
                f"retrieval {', '.join(o.config.label for o in unmeasured)}: "
                + unmeasured[0].retrieval.note.replace("this configuration", "these configurations")
            )
        chosen = self.chosen
        if (
            chosen is not None
            and chosen.retrieval is not None
            and chosen.retrieval.status == "lost"
        ):
            lines.append(
                f"warning: {chosen.config.label} lost in-context retrieval where measured "
                "(docs/retrieval.md); measure it after your retrofit (eval --probes)"
            )
        return lines

    @property
    def warning(self) -> str:
        """The chosen option's KV-replication warning at the plan's tp (or ``""``)."""
        if self.chosen is None or not self.chosen.serving:
            return ""
        return str(self.chosen.serving.get("warning", ""))

    def to_markdown(self) -> str:
        """The plan as the ``plan`` command prints it: a header line, the ranked table, notes,
        the chosen configuration and its convert command (the last line)."""
        o = self.objective
        rows = [
            [
                p.rank,
                p.config.label + (" (now)" if p.current else ""),
                f"{p.params_total:,}",
                f"{p.kv_cache_bytes / 2**30:.3f}",
                f"{p.memory_bytes / 2**30:.3f}",
                f"{p.decode_flops:.4g}",
                f"{p.change_percent['memory']:+.1f}",
                f"{p.change_percent['flops']:+.1f}",
                f"{p.z:.1f}",
                "*" if p.pareto else "",
                "ok" if p.within_budget else "over",
                "" if p.prior_loss_delta is None else f"{p.prior_loss_delta:+.3f}",
                "" if p.retrieval is None else p.retrieval.status,
            ]
            for p in self.options
        ]
        headers = ["rank", "heads:kv", "params", "KV cache GiB", "memory GiB", "FLOPs/token"]
        headers += ["dM %", "dC %", "Z", "pareto", "budget", "prior dloss", "retrieval"]
        lines = [
            f"{self.model} ({self.model_type}) at context {self.context:,}, {self.dtype}; Z = "
            f"{o.lam:g}*M^{o.alpha:.3g} + {1 - o.lam:.3g}*C^{o.beta:.3g} "
            "(M: weights + KV bytes, C: decode FLOPs/token)",
            "",
            markdown_table(headers, rows, "rlrrrrrrrllrl"),
            "",
        ]
        if self.options[0].beyond_max_position:
            lines.append(
                f"note: context {self.context:,} is beyond the model's max_position_embeddings "
                "(costed anyway)"
            )
        lines.append(f"prior dloss: {self.prior_label}")
        lines += self.retrieval_lines()
        serving = self.serving or {}
        split = serving.get("tp", 1) > 1 or serving.get("dcp", 1) > 1
        if split:
            lines.append(self._serving_line())
        if self.chosen is None:
            lines.append(
                f"no configuration with at least {self.min_heads} query heads fits the budget"
                + (" and splits --tp ways" if split else "")
                + ": raise the budget or lower --min-heads"
                + (" or change --tp" if split else "")
            )
        elif self.command is None:
            lines.append("chosen: the current configuration; no conversion needed")
        else:
            c = self.chosen
            lines.append(
                f"chosen: heads {c.heads}, kv_heads {c.kv_heads} (best Z within the budget with "
                f"at least {self.min_heads} query heads)"
            )
            lines.append(self.command)
        return "\n".join(lines)

    def _serving_line(self) -> str:
        """Per-device KV of every option at the plan's tp/dcp (or why vLLM cannot split it)."""
        serving = self.serving or {}
        parts = []
        for p in self.options:
            if not p.serving:
                continue
            if "error" in p.serving:
                parts.append(f"{p.config.label} cannot be split: {p.serving['error']}")
            else:
                size = p.serving["per_device_kv_cache_bytes"] / 2**30
                parts.append(f"{p.config.label} {size:.3f} GiB KV per device")
        return (
            f"serving tp {serving['tp']}, dcp {serving['dcp']} (KV {serving['kv_dtype']}): "
            + "; ".join(parts)
        )


def convert_command(
    model: str, out: str, option: PlanOption, current_heads: int, revision: str | None = None
) -> str:
    """The ``gqa-retrofit convert`` command that produces ``option`` from ``model``.

    A ``config.json`` path is replaced by its directory (convert reads the checkpoint there).
    """
    if Path(model).name == "config.json":
        model = str(Path(model).parent)
    parts = ["gqa-retrofit", "convert", model, out, "--kv-heads", str(option.kv_heads)]
    if option.heads != current_heads:
        parts += ["--heads", str(option.heads)]
    if revision:
        parts += ["--revision", revision]
    return shlex.join(parts)


def default_output_name(model: str, option: PlanOption) -> str:
    name = Path(model.rstrip("/")).name or "model"
    if name == "config.json":
        name = Path(model).parent.name or "model"
    return f"{name.replace('/', '-')}-h{option.heads}-kv{option.kv_heads}"


def plan_retrofit(
    model: str | Path,
    *,
    context: int,
    memory_budget: int | None = None,
    max_flops: float | None = None,
    lam: float = Z_LAMBDA,
    alpha: float = Z_ALPHA,
    beta: float = Z_BETA,
    dtype: str = "bf16",
    min_heads: int | None = None,
    out: str | None = None,
    revision: str | None = None,
    kv_dtype: str | None = None,
    batch: int = 1,
    tp: int = 1,
    dcp: int = 1,
) -> RetrofitPlan:
    """Enumerate, cost exactly and rank the head configurations a retrofit of ``model`` can
    reach; choose the best Z within the budget.

    Args:
        model: a local model directory, a ``config.json`` path or a Hub id (config only).
        context: deployment context length T.
        memory_budget: bytes available for weights + KV cache (batch 1) at ``dtype``.
        max_flops: largest acceptable decode FLOPs per token at T.
        lam, alpha, beta: weights of Z (default: the paper's, ``PAPER_Z_WEIGHTS``).
        dtype: weights and KV-cache dtype of the costs.
        min_heads: fewest query heads the chosen configuration may keep (default: the current
            count, i.e. only KV heads change).
        out: output directory in the printed convert command (default: ``<name>-h<H>-kv<K>``).
        revision: Hub revision for Hub ids.
        kv_dtype: KV-cache dtype of the costs (default: ``dtype``); ``batch``: sequences.
        tp, dcp: serving tensor / decode-context parallel degrees: each option gets its
            per-device KV (vLLM's replication rule) or the reason vLLM cannot split its heads
            (then it is not chosen); ``plan.warning`` says when the chosen option's KV heads
            are fewer than ``tp`` without enough ``dcp``.

    Returns:
        The plan: options best first, Pareto front and budget marked, the chosen one and its
        convert command (``None`` when nothing fits the budget or the current model is best).

    Raises:
        ModelSourceError: the model cannot be found.
        ConfigError: an unreadable config, an MLA model, bad context, dtype, budget, weights
            or ``min_heads``.
    """
    from ..cost import estimate
    from ..cost.serving import Parallelism, serving_costs

    objective = Objective(lam=lam, alpha=alpha, beta=beta)
    _check_limits(memory_budget, max_flops)
    Parallelism(tp, dcp)
    costing: dict[str, Any] = {
        "contexts": [context], "dtype": dtype, "kv_dtype": kv_dtype, "batch": batch,
        "revision": revision,
    }  # fmt: skip
    report = estimate(str(model), **costing)
    shape = report.shape
    if shape.mla is not None:
        raise ConfigError(
            f"plan needs a model with KV heads; {report.model} ({shape.model_type}) uses MLA"
        )
    floor = _heads_floor(min_heads, shape.heads)
    current = HeadConfig(shape.heads, shape.kv_heads)
    others = [c for c in reachable_head_configs(shape.heads, shape.kv_heads) if c != current]
    report = estimate(str(model), what_if=[(c.heads, c.kv_heads, None) for c in others], **costing)
    unranked = []
    for variant in (report, *report.what_if):
        option = _plan_option(variant, report, objective, memory_budget, max_flops)
        v = variant.shape
        option.serving = serving_costs(
            layers=v.layers,
            heads=v.heads,
            kv_heads=v.cache_heads,
            head_dim=v.head_dim,
            context=context,
            kv_dtype_name=report.kv_dtype,
            batch=batch,
            tp=tp,
            dcp=dcp,
        )
        unranked.append(option)
    options = _ranked(unranked)
    # options vLLM cannot split tp ways are listed, never chosen
    chosen = next(
        (
            o
            for o in options
            if o.within_budget and o.heads >= floor and "error" not in (o.serving or {})
        ),
        None,
    )
    command = None
    if chosen is not None and not chosen.current:
        target = out or default_output_name(str(model), chosen)
        command = convert_command(str(model), target, chosen, shape.heads, revision)
    law = heads_prior_delta(report.params.non_embedding, shape.heads, shape.heads)[1]
    return RetrofitPlan(
        model=report.model,
        model_type=shape.model_type,
        context=context,
        dtype=dtype,
        objective=objective,
        options=options,
        chosen=chosen,
        memory_budget=memory_budget,
        max_flops=max_flops,
        min_heads=floor,
        prior_label=law.label,
        command=command,
        serving={"tp": tp, "dcp": dcp, "kv_dtype": report.kv_dtype, "batch": batch},
    )


def _check_limits(memory_budget: int | None, max_flops: float | None) -> None:
    if memory_budget is not None and memory_budget <= 0:
        raise ConfigError(f"invalid memory budget {memory_budget!r}: must be positive")
    if max_flops is not None and not max_flops > 0:
        raise ConfigError(f"invalid max FLOPs {max_flops!r}: must be positive")


def _heads_floor(min_heads: int | None, heads: int) -> int:
    """Fewest query heads the chosen option may keep (default: all of them)."""
    floor = heads if min_heads is None else min_heads
    if not 1 <= floor <= heads:
        raise ConfigError(
            f"invalid min_heads {min_heads!r}: must lie in 1..{heads} (the model's query heads)"
        )
    return floor


def _plan_option(
    variant: Any,
    report: Any,
    objective: Objective,
    memory_budget: int | None,
    max_flops: float | None,
) -> PlanOption:
    """One option from one estimator report (``report`` itself is the current model)."""
    cost, base = variant.per_context[0], report.per_context[0]
    s, shape = variant.shape, report.shape
    delta = None
    if s.heads != shape.heads:
        delta = heads_prior_delta(report.params.non_embedding, shape.heads, s.heads)[0]
    return PlanOption(
        heads=s.heads,
        kv_heads=s.kv_heads,
        head_dim=s.head_dim,
        current=variant is report,
        params_total=variant.params.total,
        params_non_embedding=variant.params.non_embedding,
        kv_cache_bytes=cost.kv_cache_bytes,
        memory_bytes=cost.memory_bytes,
        decode_flops=cost.decode_flops,
        prefill_flops=cost.prefill_flops,
        z=objective.z(cost.memory_bytes, cost.decode_flops),
        change_percent={
            "memory": percent_change(cost.memory_bytes, base.memory_bytes),
            "kv_cache": percent_change(cost.kv_cache_bytes, base.kv_cache_bytes),
            "flops": percent_change(cost.decode_flops, base.decode_flops),
        },
        within_budget=(memory_budget is None or cost.memory_bytes <= memory_budget)
        and (max_flops is None or cost.decode_flops <= max_flops),
        prior_loss_delta=delta,
        beyond_max_position=cost.beyond_max_position,
        retrieval=retrieval_evidence(
            model_type=shape.model_type,
            layers=shape.layers,
            hidden=shape.hidden,
            heads=shape.heads,
            kv_heads=shape.kv_heads,
            target_heads=s.heads,
            target_kv_heads=s.kv_heads,
        ),
    )


def _ranked(options: list[PlanOption]) -> list[PlanOption]:
    """Best Z first (among equal Z, more heads: less quality risk); ranks and Pareto marked."""
    options = sorted(options, key=lambda o: (o.z, -o.heads, -o.kv_heads))
    front = pareto_mask([(o.memory_bytes, o.decode_flops) for o in options])
    for rank, (option, on_front) in enumerate(zip(options, front), start=1):
        option.rank = rank
        option.pareto = on_front
    return options
