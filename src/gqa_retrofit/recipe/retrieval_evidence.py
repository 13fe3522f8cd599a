"""What is measured about in-context retrieval for a head configuration, for ``plan``.

Costs say nothing about whether a retrofit keeps the model's ability to find and copy what is in
its context. Where ``benchmarks/retrieval_probes.py`` measured a configuration (its committed
JSON, ``benchmarks/results/retrieval_probes.json``; docs/retrieval.md), ``plan`` says so with
the numbers; elsewhere it says "not measured". The rows below are that JSON's verdicts
(``gqa_retrofit.evaluation.retrieval_verdict.judge_retrieval`` against the original), copied
here because the package cannot read ``benchmarks/``; a test keeps them equal to the JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EVIDENCE_FILE = "benchmarks/results/retrieval_probes.json"


@dataclass(frozen=True)
class ModelIdentity:
    """The architecture a measurement was made on (what ``estimate`` reads from a config)."""

    name: str
    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int


@dataclass(frozen=True)
class Measurement:
    """One measured conversion: target heads, method, and whether it kept retrieval."""

    model: ModelIdentity
    heads: int
    kv_heads: int
    method: str
    trained: bool
    kept: bool
    reasons: tuple[str, ...]  # judge_retrieval's reasons (empty when kept)
    row: str  # the benchmark row name


SMOLLM2_135M = ModelIdentity("SmolLM2-135M-Instruct", "llama", 30, 576, 9, 3)

MEASURED: tuple[Measurement, ...] = (
    Measurement(
        SMOLLM2_135M,
        9,
        1,
        "mean",
        False,
        False,
        (
            "copy-probe loss 16.39 is 7.1x the source's 2.31 (keep: <= 1.3x)",
            "passkey at 1,024 tokens 0% vs the source's 100%",
            "passkey at 2,048 tokens 0% vs the source's 100%",
            "passkey at 4,096 tokens 0% vs the source's 100%",
        ),
        "kv1/mean",
    ),
    Measurement(
        SMOLLM2_135M,
        9,
        1,
        "pca-refit",
        False,
        False,
        (
            "copy-probe loss 14.05 is 6.1x the source's 2.31 (keep: <= 1.3x)",
            "passkey at 1,024 tokens 0% vs the source's 100%",
            "passkey at 2,048 tokens 0% vs the source's 100%",
            "passkey at 4,096 tokens 0% vs the source's 100%",
        ),
        "kv1/pca-refit",
    ),
    Measurement(
        SMOLLM2_135M,
        6,
        3,
        "pca-refit",
        False,
        False,
        (
            "copy-probe loss 12.10 is 5.2x the source's 2.31 (keep: <= 1.3x)",
            "passkey at 1,024 tokens 0% vs the source's 100%",
            "passkey at 2,048 tokens 0% vs the source's 100%",
            "passkey at 4,096 tokens 0% vs the source's 100%",
        ),
        "h6kv3/pca-refit",
    ),
)


@dataclass(frozen=True)
class RetrievalEvidence:
    """``status``: "kept" (unchanged or measured kept), "lost" (measured) or "not measured"."""

    status: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrieval_evidence(
    *,
    model_type: str,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    target_heads: int,
    target_kv_heads: int,
) -> RetrievalEvidence:
    """What is known about the retrieval of ``target_heads:target_kv_heads`` from this model."""
    if (target_heads, target_kv_heads) == (heads, kv_heads):
        return RetrievalEvidence("kept", "unchanged")
    identity = (model_type, layers, hidden, heads, kv_heads)
    found = [
        m
        for m in MEASURED
        if (m.model.model_type, m.model.layers, m.model.hidden, m.model.heads, m.model.kv_heads)
        == identity
        and (m.heads, m.kv_heads) == (target_heads, target_kv_heads)
    ]
    if not found:
        lost = sorted({f"{m.heads}:{m.kv_heads} {m.method}" for m in MEASURED if not m.kept})
        seen = f"; measured on {MEASURED[0].model.name}, lost by {', '.join(lost)}" if lost else ""
        return RetrievalEvidence("not measured", f"not measured for this configuration{seen}")
    kept = [m for m in found if m.kept]
    if kept:
        methods = ", ".join(f"{m.method}{' + training' if m.trained else ''}" for m in kept)
        return RetrievalEvidence("kept", f"kept with {methods} (measured, {EVIDENCE_FILE})")
    first = found[0]
    methods = ", ".join(f"{m.method}{' + training' if m.trained else ''}" for m in found)
    return RetrievalEvidence(
        "lost",
        f"lost with {methods} (measured on {first.model.name}: {first.reasons[0]}; "
        f"{EVIDENCE_FILE})",
    )
