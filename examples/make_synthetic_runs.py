"""Write ``examples/runs_synthetic.csv``: SYNTHETIC scaling runs for the recipe's worked example.

Command: ``python examples/make_synthetic_runs.py`` (from the repository root).

No model was trained for this file. Losses are drawn from a known law chosen to look like the
paper's findings (more query heads and more KV heads lower the loss floor, with diminishing
returns), plus Gaussian noise:

    loss(N, n_h, n_kv) = (A / N)^B + E0 + QH·n_h^(−PH) + KV·n_kv^(−PKV) + noise

so the fits in ``docs/recipe.md`` can be checked against the truth. Replace it with your own runs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

A, B = 1.0e8, 0.28
E0, QH, PH, KV, PKV = 1.75, 0.30, 0.35, 0.12, 0.40
NOISE = 0.004
SEED = 0
SIZES = (2.5e7, 5e7, 1e8, 2e8, 4e8, 8e8)
HEAD_COUNTS = (1, 2, 4, 8, 16, 32)
TRAIN_CONTEXT = 8192


def true_loss(params: float, heads: int, kv_heads: int) -> float:
    """The law the synthetic losses are drawn from (without noise)."""
    floor = E0 + QH * heads**-PH + KV * kv_heads**-PKV
    return float((A / params) ** B + floor)


OUTPUT = Path(__file__).with_name("runs_synthetic.csv")


def main(path: Path = OUTPUT) -> None:
    rng = np.random.default_rng(SEED)
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("# SYNTHETIC runs, not measured: drawn by examples/make_synthetic_runs.py from\n")
        f.write(
            f"# loss = ({A:.0e}/N)^{B} + {E0} + {QH}*heads^-{PH} + {KV}*kv_heads^-{PKV}"
            f" + N(0, {NOISE}^2), seed {SEED}\n"
        )
        writer = csv.writer(f)
        writer.writerow(["heads", "kv_heads", "non_embedding_params", "loss", "context"])
        for heads in HEAD_COUNTS:
            for kv_heads in (k for k in HEAD_COUNTS if k <= heads):
                for size in SIZES:
                    loss = true_loss(size, heads, kv_heads) + rng.normal(0.0, NOISE)
                    writer.writerow([heads, kv_heads, f"{size:.4g}", f"{loss:.4f}", TRAIN_CONTEXT])


if __name__ == "__main__":
    main()
