"""Rough time and memory of each pipeline stage, for ``--dry-run``.

Time comes from FLOP counts of the work (the paper's formulas via the estimator's parameter
count) divided by this machine's measured matrix-multiply rate, so the plan scales with the
model and the machine. The estimates assume the cores are free; other jobs on the machine slow
the real run down, not the plan. These are order-of-magnitude planning numbers, not promises:
attention kernels and memory bandwidth move real runs by 2x either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

# Fraction of the probe's peak that whole model passes reach. On the 2-core development
# machine the probe gives about 200 GFLOP/s; a full SmolLM2-135M training step of 4 x 256
# tokens (6N FLOPs per token, about 0.8 TFLOP) takes 5-9 s there (shared/notes/assets.md),
# i.e. roughly half of the peak.
FORWARD_EFFICIENCY = 0.5
# Bytes per second a streaming checkpoint copy reaches (read + write) on a local disk.
DISK_BYTES_PER_SECOND = 200e6


@lru_cache(maxsize=1)
def machine_flops_per_second() -> float:
    """Peak float32 matmul FLOP/s of this machine when its cores are free (cached).

    One thread is timed (the best of 8 bursts of 0.03 s) and multiplied by torch's thread
    count: a single-thread probe is stable while other jobs share the machine, where a
    multi-thread one varies several-fold with the load.
    """
    import torch

    threads = torch.get_num_threads()
    size = 512
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.set_num_threads(1)
    try:
        torch.mm(a, b)  # warm-up
        best = 0.0
        for _ in range(8):
            count = 0
            start = time.perf_counter()
            while time.perf_counter() - start < 0.03:
                torch.mm(a, b)
                count += 1
            best = max(best, 2.0 * size**3 * count / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
    return best * threads


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
