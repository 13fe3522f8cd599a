"""The canonical, family-independent form of one layer's attention weights.

Every layout (separate q/k/v, fused qkv, per-head interleaved, gpt2 Conv1D) is split into this
form before pooling and merged back after, so a pooling method is written once.

Shapes (``d`` hidden, ``n_h`` query heads, ``n_kv`` KV heads, ``d_h`` head size)::

    q      [n_h,  d_h, d]   rows of the query projection, head by head
    k, v   [n_kv, d_h, d]
    o      [d, n_h, d_h]    columns of the output projection, head by head
    q_bias [n_h, d_h] | None,  k_bias, v_bias [n_kv, d_h] | None,  o_bias [d] | None

Query head ``i`` attends with KV head ``i // (n_h // n_kv)`` (contiguous groups, as in HF's
``repeat_kv``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch


@dataclass
class AttentionWeights:
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    q_bias: torch.Tensor | None = None
    k_bias: torch.Tensor | None = None
    v_bias: torch.Tensor | None = None
    o_bias: torch.Tensor | None = None

    @property
    def heads(self) -> int:
        return int(self.q.shape[0])

    @property
    def kv_heads(self) -> int:
        return int(self.k.shape[0])

    @property
    def head_dim(self) -> int:
        return int(self.q.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.q.shape[2])

    @property
    def group_size(self) -> int:
        """Query heads per KV head."""
        return self.heads // self.kv_heads

    def replace(self, **changes: Any) -> AttentionWeights:
        """A copy with some tensors replaced (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to(self, dtype: torch.dtype) -> AttentionWeights:
        """A copy with every tensor cast to ``dtype``."""
        changes = {
            f.name: getattr(self, f.name).to(dtype)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }
        return replace(self, **changes)

    def check(self) -> None:
        """Raise ValueError when the shapes are inconsistent with each other."""
        n_h, d_h, d = self.q.shape
        n_kv = self.k.shape[0]
        expected = {
            "k": (n_kv, d_h, d),
            "v": (n_kv, d_h, d),
            "o": (d, n_h, d_h),
            "q_bias": (n_h, d_h),
            "k_bias": (n_kv, d_h),
            "v_bias": (n_kv, d_h),
            "o_bias": (d,),
        }
        for name, shape in expected.items():
            tensor = getattr(self, name)
            if tensor is not None and tuple(tensor.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")
        if n_h % n_kv:
            raise ValueError(f"{n_h} query heads are not divisible by {n_kv} KV heads")
