"""``estimate()``: the cost report of a model (and of what-if head geometries of it).

``CostReport.to_dict()`` is the JSON entry of ``gqa-retrofit estimate --json`` (design.md);
``to_markdown()`` is the table used by the CLI and by generated model cards.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import paper
from .config_reader import ModelShape
from .formulas import (
    ParamCounts,
    check_context,
    decode_flops,
    dtype_bits,
    kv_bytes,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    memory_bytes,
    param_counts,
    per_device_cache_bytes,
    prefill_flops,
    state_bytes,
    training_flops_per_token,
)
from .layer_plan import cache_layers
from .loading import load_config_dict, shape_from_config
from .paper import PAPER_Z_WEIGHTS
from .serving import Parallelism, serving_dict
from .serving import kv_dtype as kv_format

DEFAULT_CONTEXTS = (4096, 32768, 131072)

CONVENTIONS = {
    "flops": "matmul FLOPs, 2 per multiply-accumulate; lm_head counted (also when tied); "
    "norms, activations and softmax not counted",
    "decode_flops": "one new token at position T attending to min(T, window) keys per layer",
    "prefill_flops": "causal: token t attends to min(t, window) keys",
    "kv_cache_bytes": "every tensor of the cache after T tokens, times batch: kv_bytes (grows "
    "with context; a sliding or chunked layer holds min(T, window - 1) tokens as transformers' "
    "DynamicCache does; MLA caches the latent kv_lora_rank + qk_rope_head_dim, plus the "
    "indexer key under DeepSeek sparse attention) + state_bytes (fixed: gated-DeltaNet / Mamba2 "
    "conv windows at the activation dtype and recurrent states in float32)",
    "per_device_cache_bytes": "kv_cache_bytes on one device at tp/dcp: vLLM replicates KV "
    "heads tp / n_kv times when tp > n_kv (an MLA latent tp times), DCP splits cached tokens "
    "dcp ways, states are split over their heads",
    "kv_dtype": "fp8 variants: per-tensor scales (not counted); int8 / int4: one fp16 scale "
    "per 32 values of each cached vector (8.5 / 4.5 bits per value), counted",
    "memory_bytes": "weights at dtype + KV cache at kv_dtype, times batch; no activations",
    "paper": "Chen et al. 2025 (arXiv 2503.09579) eqs. 3-4 with N = non-embedding parameters",
}

# Heads of a what-if: (heads, kv_heads, head_dim or None for the model's own).
WhatIf = tuple[int, int, int | None]

_SAVED_KEYS = ("kv_cache_bytes", "decode_flops", "prefill_flops", "memory_bytes")


@dataclass(frozen=True)
class ContextCost:
    """Costs at one context length (see :data:`CONVENTIONS`)."""

    context: int
    kv_cache_bytes: int
    decode_flops: int
    prefill_flops: int
    memory_bytes: int
    training_flops_per_token: float
    beyond_max_position: bool
    paper_c_infer: float
    paper_m_infer: float
    paper_z: float
    kv_bytes: int = 0  # the part that grows with context
    state_bytes: int = 0  # fixed-size states (hybrid layers)
    per_device_cache_bytes: int | None = 0  # on one device at tp/dcp (None: cannot split)

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "kv_cache_bytes": self.kv_cache_bytes,
            "kv_bytes": self.kv_bytes,
            "state_bytes": self.state_bytes,
            "per_device_cache_bytes": self.per_device_cache_bytes,
            "decode_flops": self.decode_flops,
            "prefill_flops": self.prefill_flops,
            "memory_bytes": self.memory_bytes,
            "training_flops_per_token": self.training_flops_per_token,
            "beyond_max_position": self.beyond_max_position,
            "paper": {
                "c_infer": self.paper_c_infer,
                "m_infer": self.paper_m_infer,
                "z": self.paper_z,
            },
        }


@dataclass(frozen=True)
class CostReport:
    """Costs of one model (or one what-if geometry of it) at several context lengths."""

    model: str
    shape: ModelShape
    params: ParamCounts
    kv_cache_bytes_per_token: int
    per_context: tuple[ContextCost, ...]
    dtype: str = "bf16"
    kv_dtype: str = "bf16"
    batch: int = 1
    tp: int = 1
    dcp: int = 1
    generic_family: bool = False
    what_if: tuple[CostReport, ...] = ()
    # for a what-if: the geometry and the report it is compared with
    geometry: WhatIf | None = None
    baseline: CostReport | None = field(default=None, repr=False, compare=False)

    @property
    def model_type(self) -> str:
        return self.shape.model_type

    @property
    def short_name(self) -> str:
        """``model`` without directories (a ``config.json`` path gives its folder's name)."""
        path = Path(self.model)
        if path.suffix == ".json":
            return (
                path.parent.name if path.name == "config.json" and path.parent.name else path.stem
            )
        return path.name if os.sep in self.model and path.exists() else self.model

    @property
    def label(self) -> str:
        """Short name for the original, ``name [what-if 8/1x64]`` for a what-if."""
        if self.geometry is None:
            return self.short_name
        return f"{self.short_name} [what-if {_geometry_text(self.shape)}]"

    def attention_dict(self) -> dict[str, Any]:
        s = self.shape
        layers = cache_layers(s)
        windows = [layer.window for layer in layers if layer.window is not None]
        attention: dict[str, Any] = {
            "layers": s.layers,
            "heads": s.heads,
            "kv_heads": s.cache_heads if s.mla is None else 1,
            "head_dim": s.head_dim
            if s.mla is None
            else s.mla.kv_lora_rank + s.mla.qk_rope_head_dim,
            "kind": s.attention_kind,
            "sliding_layers": sum(layer.kind == "sliding" for layer in layers),
            "chunked_layers": sum(layer.kind == "chunked" for layer in layers),
            "sliding_window": max(windows, default=None),
            "full_attention_layers": sum(layer.kind == "full" for layer in layers),
            "state_layers": sum(layer.kind == "state" for layer in layers),
        }
        if s.cache_heads != s.kv_heads:
            attention["weight_kv_heads"] = s.kv_heads
        if s.plan is not None:
            attention["layer_kinds"] = [layer.kind for layer in layers]
        return attention

    def savings_percent(self, index: int) -> dict[str, float]:
        """Savings of this what-if against its baseline at ``per_context[index]`` (percent,
        positive = cheaper)."""
        if self.baseline is None:
            return {}
        mine, base = self.per_context[index], self.baseline.per_context[index]
        out = {key: _saving(getattr(base, key), getattr(mine, key)) for key in _SAVED_KEYS}
        out["params"] = _saving(self.baseline.params.total, self.params.total)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry of ``gqa-retrofit estimate --json`` (design.md, extra keys added)."""
        entry: dict[str, Any] = {}
        if self.geometry is None:
            entry["model"] = self.model
        else:
            entry.update(
                heads=self.shape.heads, kv_heads=self.shape.kv_heads, head_dim=self.shape.head_dim
            )
        entry["model_type"] = self.model_type
        entry["params"] = self.params.to_dict()
        entry["attention"] = self.attention_dict()
        entry["kv_cache_bytes_per_token"] = self.kv_cache_bytes_per_token
        per_context = []
        for i, cost in enumerate(self.per_context):
            item = cost.to_dict()
            if self.baseline is not None:
                item["savings_percent"] = self.savings_percent(i)
            per_context.append(item)
        entry["per_context"] = per_context
        entry.update(
            dtype=self.dtype,
            kv_dtype=self.kv_dtype,
            batch=self.batch,
            max_position_embeddings=self.shape.max_position,
        )
        entry["state_bytes"] = state_bytes(self.shape, self.kv_dtype, batch=self.batch)
        entry["serving"] = serving_dict(self.shape, self.kv_dtype, self.tp, self.dcp)
        if self.geometry is None:
            entry["notes"] = list(self.shape.notes)
            entry["text_config"] = self.shape.text_config
            entry["generic_family"] = self.generic_family
            entry["what_if"] = [w.to_dict() for w in self.what_if]
            entry["conventions"] = CONVENTIONS
        return entry

    def to_markdown(self) -> str:
        """A Markdown summary line and table: one row per context, what-ifs next to it."""
        return reports_to_markdown([self])


def _state_text(r: CostReport) -> str:
    fixed = state_bytes(r.shape, r.kv_dtype, batch=r.batch)
    if not fixed:
        return ""
    return f", plus {human_bytes(fixed)} of fixed-size state (does not grow with context)"


def _saving(base: float, new: float) -> float:
    return round(100.0 * (base - new) / base, 2) if base else 0.0


def _geometry_text(s: ModelShape) -> str:
    if s.mla is not None:
        return f"MLA {s.heads} heads, latent {s.mla.kv_lora_rank}+{s.mla.qk_rope_head_dim}"
    return f"{s.heads}/{s.cache_heads}x{s.head_dim}"


def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def human_bytes(value: float) -> str:
    """Binary units: ``1.5 GiB``."""
    for factor, name in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {name}"
    return f"{value:g} B"


def _context_text(context: int) -> str:
    return f"{context // 1024}K" if context % 1024 == 0 else f"{context:,}"


def reports_to_markdown(reports: Sequence[CostReport]) -> str:
    """One Markdown table for several models (and their what-ifs), side by side."""
    lines = []
    for r in reports:
        s = r.shape
        window = r.attention_dict()["sliding_window"]
        sliding = f", {r.attention_dict()['sliding_layers']} sliding layers (window {window})"
        lines.append(
            f"**{r.model}** ({s.model_type}{', text decoder' if s.text_config else ''}): "
            f"{r.params.total:,} parameters ({r.params.non_embedding:,} non-embedding"
            + (f", {r.params.active:,} active" if r.params.active != r.params.total else "")
            + f"), {s.layers} layers, "
            + (_geometry_text(s) if s.mla else f"{s.attention_kind.upper()} {_geometry_text(s)}")
            + (sliding if window else "")
            + f", KV cache {r.kv_cache_bytes_per_token:,} bytes/token ({r.kv_dtype})"
            + _state_text(r)
        )
        lines.extend(f"  note: {note}" for note in s.notes)
    lines.append("")
    lines.append(
        "| model | heads/kv×d_h | context | KV cache | decode FLOPs/token | prefill FLOPs | "
        "memory |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    flagged = False
    for r in reports:
        for variant in (r, *r.what_if):
            for i, c in enumerate(variant.per_context):
                saved = variant.savings_percent(i)

                def cell(text: str, key: str, saved: dict[str, float] = saved) -> str:
                    if key not in saved:
                        return text
                    return f"{text} ({-saved[key]:+g}%)".replace("-", "−")

                mark = " *" if c.beyond_max_position else ""
                flagged = flagged or c.beyond_max_position
                name = r.short_name if variant.geometry is None else "↳ what-if"
                lines.append(
                    f"| {name} | {_geometry_text(variant.shape)} | {_context_text(c.context)}"
                    f"{mark} | {cell(human_bytes(c.kv_cache_bytes), 'kv_cache_bytes')} | "
                    f"{cell(_si(c.decode_flops), 'decode_flops')} | "
                    f"{cell(_si(c.prefill_flops), 'prefill_flops')} | "
                    f"{cell(human_bytes(c.memory_bytes), 'memory_bytes')} |"
                )
    dtype = reports[0].dtype if reports else "bf16"
    kv_dtype = reports[0].kv_dtype if reports else "bf16"
    batch = reports[0].batch if reports else 1
    lines.append("")
    serving = ""
    if reports and (reports[0].tp > 1 or reports[0].dcp > 1):
        r0 = reports[0]
        parts = []
        for variant in (r0, *r0.what_if):
            sizes = ", ".join(
                f"{_context_text(c.context)} "
                + (
                    "not splittable"
                    if c.per_device_cache_bytes is None
                    else human_bytes(c.per_device_cache_bytes)
                )
                for c in variant.per_context
            )
            parts.append(f"{_geometry_text(variant.shape)}: {sizes}")
        serving = (
            f" Serving tp {r0.tp}, dcp {r0.dcp}, cache per device (vLLM's KV replication "
            "rule): " + "; ".join(parts) + "."
        )
    lines.append(
        f"Weights {dtype}, KV cache {kv_dtype}, batch {batch}. FLOPs: matmul, 2 per MAC; "
        "prefill causal. Memory: weights + KV cache (+ fixed states)." + serving
    )
    if flagged:
        lines.append("\\* beyond the model's max_position_embeddings (computed, not refused).")
    return "\n".join(lines) + "\n"


def _context_cost(
    s: ModelShape,
    params: ParamCounts,
    context: int,
    dtype: str,
    kv_dtype: str,
    batch: int,
    z_weights: tuple[float, float, float] = PAPER_Z_WEIGHTS,
    tp: int = 1,
    dcp: int = 1,
    strict: bool = True,
) -> ContextCost:
    n = params.non_embedding
    c_infer = paper.c_infer(n, context, s.layers, s.head_dim, s.heads)
    kv_heads = s.cache_heads if s.mla is None else 1
    kv_dim = s.head_dim if s.mla is None else s.mla.kv_lora_rank + s.mla.qk_rope_head_dim
    m_infer = paper.m_infer(n, context, s.layers, kv_dim, kv_heads)
    if s.mla is not None:  # the latent is one joint vector, not separate K and V
        m_infer = n + context * s.layers * kv_dim
    return ContextCost(
        context=context,
        kv_cache_bytes=kv_cache_bytes(s, context, kv_dtype, batch=batch),
        decode_flops=decode_flops(s, context),
        prefill_flops=prefill_flops(s, context),
        memory_bytes=memory_bytes(s, context, dtype=dtype, kv_dtype=kv_dtype, batch=batch),
        training_flops_per_token=training_flops_per_token(s, context),
        beyond_max_position=s.max_position is not None and context > s.max_position,
        paper_c_infer=c_infer,
        paper_m_infer=m_infer,
        paper_z=paper.z_objective(
            m_infer, c_infer, lam=z_weights[0], alpha=z_weights[1], beta=z_weights[2]
        ),
        kv_bytes=kv_bytes(s, context, kv_dtype, batch=batch),
        state_bytes=state_bytes(s, kv_dtype, batch=batch),
        per_device_cache_bytes=_per_device(s, context, kv_dtype, batch, tp, dcp, strict),
    )


def _per_device(
    s: ModelShape, context: int, kv_dtype: str, batch: int, tp: int, dcp: int, strict: bool
) -> int | None:
    """Per-device cache bytes; for a what-if (``strict`` False) None when vLLM could not
    split its heads ``tp`` ways (the original model's report raises instead)."""
    try:
        return per_device_cache_bytes(s, context, kv_dtype, batch=batch, tp=tp, dcp=dcp)
    except ConfigError:
        if strict:
            raise
        return None


def cost_shape(
    shape: ModelShape,
    *,
    model: str = "model",
    contexts: Iterable[int] = DEFAULT_CONTEXTS,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    batch: int = 1,
    what_if: Iterable[WhatIf | Sequence[int]] = (),
    generic_family: bool = False,
    z_weights: tuple[float, float, float] = PAPER_Z_WEIGHTS,
    tp: int = 1,
    dcp: int = 1,
) -> CostReport:
    """Cost an already-read :class:`ModelShape` (and what-if geometries of it).

    ``tp``/``dcp`` are the serving engine's tensor and decode-context parallel degrees:
    ``per_device_cache_bytes`` applies vLLM's KV replication rule (see
    :mod:`gqa_retrofit.cost.serving`).

    Raises:
        ConfigError: bad context, dtype, KV dtype, batch, tp/dcp or what-if geometry.
    """
    contexts = tuple(contexts)
    if not contexts:
        raise ConfigError("at least one context length is needed")
    for context in contexts:
        check_context(context)
    dtype_bits(dtype)
    kv_dtype = kv_format(kv_dtype or dtype).name
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    Parallelism(tp, dcp)

    def build(s: ModelShape, geometry: WhatIf | None, baseline: CostReport | None) -> CostReport:
        params = param_counts(s)
        return CostReport(
            model=model,
            shape=s,
            params=params,
            kv_cache_bytes_per_token=kv_cache_bytes_per_token(s, kv_dtype),
            per_context=tuple(
                _context_cost(
                    s, params, t, dtype, kv_dtype, batch, z_weights, tp, dcp, geometry is None
                )
                for t in contexts
            ),
            dtype=dtype,
            kv_dtype=kv_dtype,
            batch=batch,
            tp=tp,
            dcp=dcp,
            generic_family=generic_family,
            geometry=geometry,
            baseline=baseline,
        )

    original = build(shape, None, None)
    variants = []
    for geometry in what_if:
        values = tuple(geometry)
        if len(values) not in (2, 3):
            raise ConfigError(f"what-if geometry {values!r} must be (heads, kv_heads[, head_dim])")
        heads, kv_heads = values[0], values[1]
        head_dim = values[2] if len(values) == 3 else None
        if heads is None or kv_heads is None:
            raise ConfigError(f"what-if geometry {values!r} needs heads and kv_heads")
        variant_shape = shape.with_heads(heads, kv_heads, head_dim)
        variants.append(build(variant_shape, (heads, kv_heads, head_dim), original))
    return dataclasses.replace(original, what_if=tuple(variants))


def estimate(
    model_or_config: str | Path | Mapping[str, Any] | Any,
    *,
    contexts: Iterable[int] = DEFAULT_CONTEXTS,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    batch: int = 1,
    what_if: Iterable[WhatIf | Sequence[int]] = (),
    revision: str | None = None,
    token: str | bool | None = None,
    z_weights: tuple[float, float, float] = PAPER_Z_WEIGHTS,
    tp: int = 1,
    dcp: int = 1,
) -> CostReport:
    """Estimate the cost of running a model, from its config only (no weights).

    Args:
        model_or_config: a local model directory, a ``config.json`` path, a Hub id (downloads
            ``config.json`` only), a config dict, or a transformers ``PretrainedConfig``.
        contexts: context lengths T (tokens) to cost.
        dtype: weight dtype (fp32, bf16, fp16, fp8, int8, int4).
        kv_dtype: KV-cache dtype (default: ``dtype``): fp32, bf16, fp16, fp8, fp8_e4m3,
            fp8_e5m2, int8, int4 (the integer formats count one fp16 scale per 32 values).
        batch: sequences decoded together (scales KV cache and memory).
        what_if: head geometries ``(heads, kv_heads[, head_dim])`` to cost as retrofits of the
            same model (every other dimension unchanged), with savings against the original.
        revision: Hub revision (branch, tag or commit) for Hub ids.
        token: Hub token (default: the huggingface_hub login / ``HF_TOKEN``).
        z_weights: (λ, α, β) of the paper's ``Z = λ·M^α + (1−λ)·C^β`` (default: the paper's,
            :data:`~gqa_retrofit.cost.paper.PAPER_Z_WEIGHTS`), evaluated on ``paper.m_infer``
            (values) and ``paper.c_infer``.
        tp: tensor parallel degree of the serving engine (per-device cache bytes).
        dcp: decode context parallel degree (vLLM ``-dcp``; must divide ``tp``).

    Returns:
        A :class:`CostReport`; ``what_if`` variants are in ``report.what_if``.

    Raises:
        ModelSourceError: the model cannot be found or the Hub cannot be reached.
        ConfigError: invalid JSON, a missing or invalid field, a bad context/dtype/batch/what-if.
        UnsupportedFamilyError: a model type the estimator cannot read exactly.
    """
    config, label = load_config_dict(model_or_config, revision=revision, token=token)
    shape, generic = shape_from_config(config)
    return cost_shape(
        shape,
        model=label,
        contexts=contexts,
        dtype=dtype,
        kv_dtype=kv_dtype,
        batch=batch,
        what_if=what_if,
        generic_family=generic,
        z_weights=z_weights,
        tp=tp,
        dcp=dcp,
    )


def estimate_what_if(
    model_or_config: str | Path | Mapping[str, Any] | Any,
    heads: int,
    kv_heads: int,
    head_dim: int | None = None,
    **kwargs: Any,
) -> CostReport:
    """The cost of one retrofit geometry of a model (its report, compared with the original
    through ``.savings_percent(i)``). Keyword arguments are those of :func:`estimate`."""
    return estimate(model_or_config, what_if=[(heads, kv_heads, head_dim)], **kwargs).what_if[0]
