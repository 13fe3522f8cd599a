"""Plot KV-cache memory and decode FLOPs against context length (matplotlib, Agg backend)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .formulas import decode_flops, kv_cache_bytes
from .report import CostReport

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path) -> Path:
    """Validate a plot file name before any work.

    Raises:
        ConfigError: unsupported suffix or a parent directory that does not exist.
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"plot file {str(path)!r} must end in one of: {', '.join(PLOT_SUFFIXES)}")
    if not path.parent.resolve().is_dir():
        raise ConfigError(f"plot directory {str(path.parent)!r} does not exist")
    return path


def _tokens_label(value: float, _pos: object = None) -> str:
    """Axis label for a token count: 512, 4K, 128K, 1M."""
    if value >= 2**20:
        return f"{value / 2**20:g}M"
    if value >= 1024:
        return f"{value / 1024:g}K"
    return f"{value:g}"


def context_grid(max_context: int, *, start: int = 256, points_per_octave: int = 4) -> list[int]:
    """Context lengths from ``start`` to ``max_context``, evenly spaced on a log axis."""
    grid = []
    value = float(start)
    while value < max_context:
        grid.append(int(value))
        value *= 2 ** (1 / points_per_octave)
    grid.append(max_context)
    return sorted(set(grid))


def plot_reports(reports: Sequence[CostReport], path: str | Path, *, title: str = "") -> Path:
    """Write a two-panel figure: KV cache (GiB) and decode GFLOPs per token vs context.

    One curve per model and per what-if, log-2 context axis; markers at the report's contexts.
    The file is written atomically (PNG, SVG or PDF by suffix).

    Raises:
        ConfigError: bad file name, or no reports.
    """
    path = check_plot_path(path)
    if not reports:
        raise ConfigError("nothing to plot: no reports")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_kv, ax_flops) = plt.subplots(1, 2, figsize=(12, 4.8))
    for report in reports:
        contexts = [c.context for c in report.per_context]
        grid = context_grid(max(contexts))
        for variant in (report, *report.what_if):
            s = variant.shape
            label = variant.label
            kv = [kv_cache_bytes(s, t, variant.kv_dtype, batch=variant.batch) / 2**30 for t in grid]
            flops = [decode_flops(s, t) / 1e9 for t in grid]
            style = "--" if variant.geometry is not None else "-"
            (line,) = ax_kv.plot(grid, kv, style, label=label)
            ax_flops.plot(grid, flops, style, label=label, color=line.get_color())
            ax_kv.plot(
                contexts,
                [c.kv_cache_bytes / 2**30 for c in variant.per_context],
                "o",
                color=line.get_color(),
            )
            ax_flops.plot(
                contexts,
                [c.decode_flops / 1e9 for c in variant.per_context],
                "o",
                color=line.get_color(),
            )
    first = reports[0]
    ax_kv.set_title(f"KV cache ({first.kv_dtype}, batch {first.batch})")
    ax_kv.set_ylabel("KV cache [GiB]")
    ax_flops.set_title("Decode FLOPs for one token at position T")
    ax_flops.set_ylabel("decode [GFLOPs / token]")
    from matplotlib.ticker import FuncFormatter

    for ax in (ax_kv, ax_flops):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
        ax.set_xlabel("context length T [tokens]")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
