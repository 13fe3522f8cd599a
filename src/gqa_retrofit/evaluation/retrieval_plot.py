"""One figure of several models' retrieval probes: passkey ladder, copy probe, loss by position."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .retrieval import RetrievalResult


def plot_retrieval(results: dict[str, RetrievalResult], path: str | Path) -> Path:
    """Write a PNG with one panel per probe that ran for any model, a line/bar per model.

    Args:
        results: ``{label: result}``, e.g. ``{"original": ..., "converted": ..., "trained": ...}``.
        path: the PNG to write (its directory must exist).

    Returns:
        ``path``.

    Raises:
        ValueError: no probe results to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        name
        for name, present in (
            ("passkey", any(r.passkey for r in results.values())),
            ("copy", any(r.copy for r in results.values())),
            ("long", any(r.long_window for r in results.values())),
        )
        if present
    ]
    if not panels:
        raise ValueError("no retrieval results to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8))
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, panel in zip(axes, panels):
        if panel == "passkey":
            for label, r in results.items():
                if r.passkey is None:
                    continue
                rates = r.passkey.success_rates()
                ax.plot(list(rates), [100 * v for v in rates.values()], "o-", label=label)
            limit = next((r.passkey.position_limit for r in results.values() if r.passkey), None)
            if limit:
                ax.axvline(limit, color="grey", linestyle=":", label="position limit")
            ax.set(
                xscale="log",
                ylim=(-5, 105),
                xlabel="prompt length (tokens)",
                ylabel="success (%)",
                title="Passkey retrieval",
            )
            ax.set_xscale("log", base=2)
        elif panel == "copy":
            labels = [k for k, r in results.items() if r.copy is not None]
            copies = [results[k].copy for k in labels]
            x = range(len(labels))
            ax.bar(
                [i - 0.2 for i in x], [c.first_copy_loss for c in copies if c], 0.4, label="first"
            )
            ax.bar(
                [i + 0.2 for i in x], [c.second_copy_loss for c in copies if c], 0.4, label="second"
            )
            chance = copies[0].chance_loss if copies[0] else None
            if chance:
                ax.axhline(chance, color="grey", linestyle=":", label="chance")
            ax.set_xticks(list(x), labels)
            ax.set(ylabel="mean loss (nats)", title="Copy probe: repeated random span")
        else:
            for label, r in results.items():
                if r.long_window is None:
                    continue
                b = r.long_window.buckets
                ax.plot([(x.start + x.end) / 2 for x in b], [x.loss for x in b], "o-", label=label)
            ax.set(xlabel="position (tokens)", ylabel="mean loss (nats)", title="Loss by position")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
