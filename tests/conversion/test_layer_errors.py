"""Per-layer reconstruction errors: read from manifest records, summarised, plotted."""

from __future__ import annotations

from pathlib import Path

from gqa_retrofit.conversion.layer_errors import (
    describe_errors,
    layer_error,
    manifest_errors,
    plot_layer_errors,
    report_lines,
)

MANIFEST = {
    "layers": [
        {
            "layer": 0,
            "groups": [[0, 1]],
            "refit": {"relative_error_before": 0.4, "relative_error_after": 0.1},
        },
        {"layer": 1, "refit": {"relative_error_before": 0.5, "relative_error_after": 0.3}},
        {"layer": 2, "refit": {"relative_error_before": 0.2, "relative_error_after": 0.2}},
        {"layer": 3, "groups": [[0, 1]]},  # a method that measures nothing
    ]
}


def test_errors_come_from_the_refit_records() -> None:
    assert layer_error(MANIFEST["layers"][1]) == 0.3
    assert layer_error(MANIFEST["layers"][3]) is None
    assert manifest_errors(MANIFEST) == {0: 0.1, 1: 0.3, 2: 0.2}
    assert manifest_errors({}) == {}
    assert describe_errors(manifest_errors(MANIFEST)) == (
        "relative reconstruction error of the attention output per layer: median 0.2000, "
        "min 0.1000 (layer 0), max 0.3000 (layer 1)"
    )


def test_plot_and_report_section(tmp_path: Path) -> None:
    errors = manifest_errors(MANIFEST)
    plot_layer_errors(errors, tmp_path / "layer_errors.png")
    assert (tmp_path / "layer_errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = report_lines(errors, "report/layer_errors.png")
    assert lines[0] == "## Conversion per layer"
    assert lines[2].startswith("Relative reconstruction error of the attention output per layer")
    assert "![reconstruction error per layer](report/layer_errors.png)" in lines
    assert report_lines({}, "x.png") == []
