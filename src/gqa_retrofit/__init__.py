"""gqa-retrofit: retrofit Hugging Face language models to decoupled-head grouped-query attention.

The public API is re-exported here lazily, so ``import gqa_retrofit`` stays cheap (no torch).
"""

from __future__ import annotations

from ._lazy import lazy_exports
from ._version import __version__

# public name -> module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    "GQARetrofitError": "gqa_retrofit.errors",
    "ConfigError": "gqa_retrofit.errors",
    "UnsupportedFamilyError": "gqa_retrofit.errors",
    "ModelSourceError": "gqa_retrofit.errors",
    "DataError": "gqa_retrofit.errors",
    "ConversionError": "gqa_retrofit.errors",
    "OutputExistsError": "gqa_retrofit.errors",
    "TrainingError": "gqa_retrofit.errors",
    "HubError": "gqa_retrofit.errors",
    "AssetError": "gqa_retrofit.errors",
    "get_family": "gqa_retrofit.arch",
    "patch_config": "gqa_retrofit.patching",
    "patch_model": "gqa_retrofit.conversion.live",
    "unpatch": "gqa_retrofit.conversion.live",
    "PatchReport": "gqa_retrofit.conversion.live",
    "patchable_families": "gqa_retrofit.patching",
    "write_patched_config": "gqa_retrofit.patching.save",
    "supported_families": "gqa_retrofit.arch",
    "default_model_dir": "gqa_retrofit.assets",
    "default_corpus": "gqa_retrofit.assets",
    "evaluate_perplexity": "gqa_retrofit.evaluation.perplexity",
    "convert_checkpoint": "gqa_retrofit.conversion.convert",
    "ConversionReport": "gqa_retrofit.conversion.convert",
    "verify_checkpoint": "gqa_retrofit.conversion.verify",
    "VerifyReport": "gqa_retrofit.conversion.verify",
    "CalibrationSession": "gqa_retrofit.conversion.calibration",
    "LayerCalibration": "gqa_retrofit.conversion.calibration",
    "convert_in_memory": "gqa_retrofit.conversion.in_memory",
    "InMemoryConversion": "gqa_retrofit.conversion.in_memory",
    "PerplexityResult": "gqa_retrofit.evaluation.perplexity",
    "greedy_continuations": "gqa_retrofit.evaluation.generation",
    "repeated_ngram_fraction": "gqa_retrofit.evaluation.generation",
    "estimate": "gqa_retrofit.cost",
    "estimate_what_if": "gqa_retrofit.cost",
    "cost_shape": "gqa_retrofit.cost",
    "CostReport": "gqa_retrofit.cost",
    "ModelShape": "gqa_retrofit.cost",
    "read_config": "gqa_retrofit.cost",
    "plot_reports": "gqa_retrofit.cost",
    "reports_to_markdown": "gqa_retrofit.cost",
    "recommend": "gqa_retrofit.recipe",
    "plan_retrofit": "gqa_retrofit.recipe",
    "fit_scaling_law": "gqa_retrofit.recipe",
    "recommendation_to_geometry": "gqa_retrofit.recipe",
    "HeadConfig": "gqa_retrofit.recipe",
    "ScalingFit": "gqa_retrofit.recipe",
    "RecipeResult": "gqa_retrofit.recipe",
    "RetrofitPlan": "gqa_retrofit.recipe",
    "render_card": "gqa_retrofit.hub.card",
    "write_card": "gqa_retrofit.hub.card",
    "push_to_hub": "gqa_retrofit.hub.push",
    "train": "gqa_retrofit.training",
    "TrainOptions": "gqa_retrofit.training",
    "TrainingReport": "gqa_retrofit.training",
    "benchmark_decode": "gqa_retrofit.evaluation.bench",
    "retrofit": "gqa_retrofit.pipeline.retrofit",
    "RetrofitResult": "gqa_retrofit.pipeline.retrofit",
    "RetrofitOptions": "gqa_retrofit.pipeline.options",
    "demo": "gqa_retrofit.pipeline.demo",
    "DemoSummary": "gqa_retrofit.pipeline.demo",
}


__getattr__ = lazy_exports(__name__, _EXPORTS, cache=globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
