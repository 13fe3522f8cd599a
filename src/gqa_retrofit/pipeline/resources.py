"""Rough time and memory of each pipeline stage, for ``--dry-run``.

Time comes from FLOP counts of the work (the paper's formulas via the estimator's parameter
count) divided by this machine's measured matrix-multiply rate, so the plan scales with the
model and the machine. These are order-of-magnitude planning numbers, not promises: attention
kernels, memory bandwidth and other load on the machine move real runs by 2x either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

# Fraction of the matmul probe's rate that model passes reach. Calibrated on one demo run
# (SmolLM2-135M, fp32, 2 shared cores; benchmarks/results/demo_reduced_run.json): its training
# steps ran at about the probe's rate measured under the same load, evaluation at about half.
FORWARD_EFFICIENCY = 1.0
# Bytes per second a streaming checkpoint copy reaches (read + write) on a local disk.
DISK_BYTES_PER_SECOND = 200e6


@lru_cache(maxsize=1)
def machine_flops_per_second() -> float:
    """FLOP/s of a float32 matrix multiply on this machine (a ~0.2 s probe, cached)."""
    import torch

    size = 512
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < 0.2:
        torch.mm(a, b)
        count += 1
    return 2.0 * size**3 * count / (time.perf_counter() - start)


@dataclass(frozen=True)
class ModelSize:
    """What the estimates need about a model: parameters, bytes per value, cache per token."""

    params: int
    bytes_per_param: int
    kv_bytes_per_token: int  # at the model's dtype
    layers: int
    heads: int
    head_dim: int

    @property
    def weight_bytes(self) -> int:
        return self.params * self.bytes_per_param


def forward_seconds(size: ModelSize, tokens: int, *, context: int, passes: float = 1.0) -> float:
    """Seconds for ``passes`` forward-equivalents over ``tokens`` tokens at ``context``.

    FLOPs per token: ``2N + 2·T·L·d_h·n_h`` (causal attention averaged over the window, as in
    :func:`gqa_retrofit.cost.paper.c_prefill`).
    """
    flops = tokens * (2.0 * size.params + 2.0 * context * size.layers * size.head_dim * size.heads)
    return passes * flops / (machine_flops_per_second() * FORWARD_EFFICIENCY)


def decode_seconds(size: ModelSize, steps: int) -> float:
    """Seconds for ``steps`` single-token decode steps: each reads every weight once."""
    bandwidth = 10e9  # bytes/s of memory reads on a small CPU machine
    flops_seconds = 2.0 * size.params / machine_flops_per_second()
    return steps * max(size.weight_bytes / bandwidth, flops_seconds)


def copy_seconds(size: ModelSize) -> float:
    """Seconds to stream a checkpoint of this size from disk to disk."""
    return 2.0 * size.weight_bytes / DISK_BYTES_PER_SECOND
