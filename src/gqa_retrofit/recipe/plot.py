"""The paper's recipe plot: loss against inference memory, FLOPs and Z at one context, one curve
per head configuration (each curve sweeps the model size along its fitted law)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .aspect import model_shape
from .search import RecipeResult, paper_costs

_SUFFIXES = (".png", ".svg", ".pdf")


def plot_recipe(
    result: RecipeResult,
    path: str | os.PathLike[str],
    *,
    max_curves: int | None = None,
    points: int = 40,
) -> Path:
    """Draw loss vs memory, FLOPs and Z at ``result.context`` for each fitted configuration.

    Curves run over model sizes from the smallest fitted run to 4× the largest N* (or run);
    the target loss is a dashed line and each configuration's N* a marker on its curve, the
    best one starred.

    Args:
        result: a search result (its fits, objective, context and ranking are used).
        path: output file (.png, .svg or .pdf).
        max_curves: draw only the best-ranked this many configurations (default: all).
        points: samples per curve.

    Returns:
        The path written.

    Raises:
        ConfigError: unsupported file suffix.
    """
    out = Path(path)
    if out.suffix.lower() not in _SUFFIXES:
        raise ConfigError(
            f"invalid plot file {str(path)!r}: the name must end in {', '.join(_SUFFIXES)}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result.recommendations[:max_curves] if max_curves else result.recommendations
    head_dim = recs[0].head_dim
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), sharey=True)
    cmap = plt.get_cmap("viridis")
    largest = max(max(r.params for r in recs), max(f.max_params for f in result.fits.values()))
    smallest = min(f.min_params for f in result.fits.values())
    sizes = np.geomspace(smallest, 4.0 * largest, points)
    for i, rec in enumerate(recs):
        fit = result.fits[rec.config]
        mem, flops, z, loss = [], [], [], []
        for n in sizes:
            shape = model_shape(
                float(n), rec.heads, rec.kv_heads, head_dim=head_dim, sizing=result.sizing
            )
            cost = paper_costs(
                float(n), shape.layers, rec.heads, rec.kv_heads, result.context, head_dim=head_dim
            )
            mem.append(cost.memory * rec.memory_bytes / rec.memory)
            flops.append(cost.flops)
            z.append(result.objective.z(cost.memory, cost.flops))
            loss.append(fit.loss(float(n)))
        color = cmap(i / max(1, len(recs) - 1))
        best = rec.rank == 1
        label = f"{rec.heads}:{rec.kv_heads}" + (" (best)" if best else "")
        for ax, xs, x_star in zip(axes, (mem, flops, z), (rec.memory_bytes, rec.flops, rec.z)):
            ax.plot(xs, loss, color=color, lw=2.4 if best else 1.1, label=label)
            ax.plot(
                [x_star],
                [rec.predicted_loss],
                marker="*" if best else "o",
                color=color,
                ms=14 if best else 4,
            )
    titles = (
        "inference memory M (bytes, weights + KV cache)",
        "decode FLOPs per token C",
        f"Z = {result.objective.lam:g}·M^{result.objective.alpha:.3g} + "
        f"{1 - result.objective.lam:.3g}·C^{result.objective.beta:.3g}",
    )
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.axhline(result.target_loss, color="red", ls="--", lw=1)
        ax.set_xlabel(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("loss (fitted (a/N)^b + E)")
    axes[2].legend(title="heads:kv_heads", fontsize=7, ncol=2, loc="upper right")
    fig.suptitle(
        f"Cost-optimal GQA recipe at context {result.context:,} tokens, target loss "
        f"{result.target_loss:g} (dashed); N* marked"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
