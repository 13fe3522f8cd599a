"""The recipe's worked example (docs/recipe.md): fits, rankings, the paper's headline, timing.

Command: ``PYTHONPATH=src python benchmarks/recipe_example.py`` (from the repository root).
Writes ``benchmarks/results/recipe_example.json`` and ``docs/recipe_plot.png``. The runs file
``examples/runs_synthetic.csv`` is SYNTHETIC (drawn from a known law; see its header).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from gqa_retrofit.recipe import HeadConfig, plot_recipe, recommend, search
from gqa_retrofit.recipe.scaling import ScalingFit

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "examples" / "runs_synthetic.csv"
RESULT = ROOT / "benchmarks" / "results" / "recipe_example.json"
PLOT = ROOT / "docs" / "recipe_plot.png"
SMOLLM2 = ROOT / "tests" / "recipe" / "fixtures" / "smollm2-135m"
TARGET = 2.6
CONTEXTS = (8192, 32768, 131072)


def _top(result: Any, n: int = 5) -> list[dict[str, Any]]:
    keys = (
        "rank",
        "heads",
        "kv_heads",
        "params",
        "layers",
        "hidden",
        "memory",
        "memory_bytes",
        "flops",
        "z",
        "pareto",
        "change_percent",
    )
    return [{k: r.to_dict()[k] for k in keys} for r in result.recommendations[:n]]


def _headline() -> dict[str, Any]:
    """(8, 1) at 1.8B vs (24, 8) at 1.2B at T = 131,072, through the search with fits that put
    N* at the paper's nominal sizes; shapes from the paper's table or by Appendix B.1."""

    def law(n_star: float, gap: float, e: float) -> ScalingFit:
        return ScalingFit(
            a=n_star * gap ** (1 / 0.3),
            b=0.3,
            e=e,
            a_stderr=0,
            b_stderr=0,
            e_stderr=0,
            r2=1,
            rmse=0,
            points=6,
            min_params=1e8,
            max_params=2e9,
        )

    fits = {HeadConfig(24, 8): law(1.2e9, 0.5, 2.0), HeadConfig(8, 1): law(1.8e9, 0.4, 2.1)}
    out = {}
    for sizing in ("table", "interpolate"):
        result = search(fits, 2.5, 131072, baseline=HeadConfig(24, 8), sizing=sizing)
        ours = next(r for r in result.recommendations if r.config == HeadConfig(8, 1))
        assert result.baseline is not None and ours.change_percent is not None
        out[sizing] = {
            "ours": {
                "heads": 8,
                "kv_heads": 1,
                "params": ours.params,
                "layers": ours.layers,
                "hidden": ours.hidden,
            },
            "baseline": {
                "heads": 24,
                "kv_heads": 8,
                "params": result.baseline.params,
                "layers": result.baseline.layers,
                "hidden": result.baseline.hidden,
            },
            "flops_change_percent": ours.change_percent["flops"],
            "memory_change_percent": ours.change_percent["memory"],
        }
    return out


def _plan() -> dict[str, Any] | None:
    try:
        from gqa_retrofit.recipe import plan_retrofit

        plan = plan_retrofit(SMOLLM2, context=131072)
    except (ImportError, AttributeError):  # the estimator is not available
        return None
    data = plan.to_dict()
    data["model"] = "tests/recipe/fixtures/smollm2-135m"
    data["command"] = (data["command"] or "").replace(str(SMOLLM2), data["model"])
    return data


def main() -> None:
    start = time.perf_counter()
    main_result = recommend(RUNS, context=131072, target_loss=TARGET, baseline="32:8")
    seconds = time.perf_counter() - start
    by_context = {}
    for context in CONTEXTS:
        result = recommend(RUNS, context=context, target_loss=TARGET, baseline="32:8")
        by_context[str(context)] = _top(result)
    by_lambda = {}
    for lam in (1.0, 0.9, 0.5, 0.0):
        result = recommend(RUNS, context=131072, target_loss=TARGET, lam=lam, baseline="32:8")
        by_lambda[str(lam)] = _top(result, 3)
    plot_recipe(main_result, PLOT)
    data = {
        "runs_file": "examples/runs_synthetic.csv (SYNTHETIC, not measured)",
        "target_loss": TARGET,
        "fits": {c.label: f.to_dict() for c, f in sorted(main_result.fits.items())},
        "recommend_128k": main_result.to_dict()["recommendations"],
        "top5_by_context": by_context,
        "top3_by_lambda_128k": by_lambda,
        "headline": _headline(),
        "plan_smollm2_128k": _plan(),
        "recommend_seconds": seconds,
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULT.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
