"""The data-aware conversion methods, as one table; importing this package registers them.

Every data-aware method is the pipeline of :func:`~.compose.convert_attention` (KV pooling ->
query-head selection by importance -> optional ``o_proj`` refit) with fixed choices, so each is
one :class:`ComposedMethod` row below: its name, what it pools, whether it refits, a summary and
a reference. A method that is not such a pipeline is one function registered with
:func:`~gqa_retrofit.conversion.pooling.register_pooling` instead (as ``mean`` is).

``pca-refit`` (:data:`DEFAULT_METHOD`) is the default when calibration text is given; the
measured comparison of the methods is in docs/convert.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...arch.canonical import AttentionWeights
from ..pooling import HeadTarget, PoolResult, register_pooling
from .compose import KVPooling, convert_attention
from .query_heads import select_query_heads

DEFAULT_METHOD = "pca-refit"


@dataclass(frozen=True)
class ComposedMethod:
    """One data-aware method: :func:`convert_attention` with ``kv`` and ``refit`` fixed."""

    name: str
    kv: KVPooling  # how the KV heads of a group are merged
    refit: bool  # least-squares refit of o_proj against the original attention output
    summary: str
    reference: str

    def __call__(
        self, weights: AttentionWeights, target: HeadTarget, calibration: Any | None = None
    ) -> PoolResult:
        return convert_attention(weights, target, calibration, kv=self.kv, refit=self.refit)


DATA_AWARE_METHODS: tuple[ComposedMethod, ...] = (
    ComposedMethod(
        "align-mean",
        kv="align",
        refit=False,
        summary="orthogonal alignment of the heads of each group (V: Procrustes, K: RoPE-pair "
        "rotations, folded into q_proj/o_proj), then mean pooling",
        reference="Jin et al. 2025, arXiv 2412.20677 (mha2gqa)",
    ),
    ComposedMethod(
        "pca",
        kv="pca",
        refit=False,
        summary="shared KV head per group by weighted PCA (K: per-RoPE-pair complex rank 1; V: "
        "o_proj-weighted rank d_h), compensating maps folded into q_proj and o_proj",
        reference="after Yu et al. 2024, arXiv 2406.07056 (SVD KV-head compression)",
    ),
    ComposedMethod(
        "mean-refit",
        kv="mean",
        refit=True,
        summary="mean pooling, then least-squares refit of o_proj against the original layer's "
        "attention output, layer by layer",
        reference="GQA mean pooling (arXiv 2305.13245) + layer-wise output reconstruction",
    ),
    ComposedMethod(
        "pca-refit",
        kv="pca",
        refit=True,
        summary="shared KV head by weighted PCA (see 'pca'), then least-squares refit of o_proj "
        "against the original layer's attention output, layer by layer",
        reference="after Yu et al. 2024, arXiv 2406.07056, + layer-wise output reconstruction",
    ),
)

for _method in DATA_AWARE_METHODS:
    register_pooling(
        _method.name,
        pools=_method.kv,
        refit=_method.refit,
        needs_calibration=True,
        summary=_method.summary,
        reference=_method.reference,
    )(_method)

__all__ = [
    "DATA_AWARE_METHODS",
    "DEFAULT_METHOD",
    "ComposedMethod",
    "convert_attention",
    "select_query_heads",
]
