"""The per-layer reconstruction error of a calibrated conversion: read, summarised, plotted.

Data-aware methods that refit the output projection record, for every decoder layer, the
relative error of the converted attention output against the original on the calibration
activations (``relative_error_after`` in the manifest's ``layers`` records). The converter
shows it while it runs; the retrofit report plots it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

PLOT = "layer_errors.png"


def layer_error(record: dict[str, Any]) -> float | None:
    """The relative reconstruction error of a layer's attention output in a manifest record
    (``relative_error_after`` of a refit; None for methods that do not measure it)."""
    for value in record.values():
        if isinstance(value, dict):
            if isinstance(value.get("relative_error_after"), (int, float)):
                return float(value["relative_error_after"])
            found = layer_error(value)
            if found is not None:
                return found
    return None


def manifest_errors(manifest: dict[str, Any]) -> dict[int, float]:
    """Layer -> relative reconstruction error, from a conversion manifest (empty if none)."""
    errors: dict[int, float] = {}
    for record in manifest.get("layers") or []:
        if isinstance(record, dict) and isinstance(record.get("layer"), int):
            error = layer_error(record)
            if error is not None:
                errors[record["layer"]] = error
    return errors


def describe_errors(errors: dict[int, float]) -> str:
    """One line: the relative reconstruction error per layer, its range and where it peaks."""
    worst = max(errors, key=errors.__getitem__)
    best = min(errors, key=errors.__getitem__)
    return (
        f"relative reconstruction error of the attention output per layer: median "
        f"{statistics.median(errors.values()):.4f}, min {errors[best]:.4f} (layer {best}), "
        f"max {errors[worst]:.4f} (layer {worst})"
    )


def plot_layer_errors(errors: dict[int, float], path: Path) -> None:
    """A bar chart of the error per layer (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted(errors)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.22 * len(layers) + 2), 3.4))
    ax.bar(layers, [errors[i] for i in layers], color="#4c72b0")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("relative error of the attention output")
    ax.set_title("Conversion: reconstruction error per layer (calibration data)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_lines(errors: dict[int, float], plot: str) -> list[str]:
    """The report section (Markdown lines) for ``errors``; nothing when there are none."""
    if not errors:
        return []
    return [
        "## Conversion per layer",
        "",
        describe_errors(errors)[0].upper() + describe_errors(errors)[1:] + ".",
        "",
        f"![reconstruction error per layer]({plot})",
        "",
    ]
