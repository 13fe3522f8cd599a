"""The paper's cost-optimal GQA recipe (Chen et al., arXiv 2503.09579, Section 4.1).

Fit ``loss(N) = (a/N)^b + E`` per head configuration, size each candidate for a target loss,
shape it from the paper's aspect-ratio table, cost it at the deployment context and minimise
``Z = λ·M^α + (1−λ)·C^β``. :func:`plan_retrofit` applies the same costs to an existing
checkpoint's reachable head configurations.
"""

from __future__ import annotations

from .aspect import (
    PAPER_ASPECT_TABLE,
    AspectRow,
    PaperShape,
    aspect_ratio,
    model_shape,
    non_embedding_params,
    shape_for_params,
    table_shape,
)
from .geometry import from_scratch_config, load_recommendation, recommendation_to_geometry
from .plan import PlanOption, RetrofitPlan, plan_retrofit, reachable_head_configs
from .plot import plot_recipe
from .prior import PAPER_HEADS_LAWS, HeadsLaw
from .recommend import recommend
from .runs import Run, fit_runs, read_runs
from .scaling import ScalingFit, fit_scaling_law
from .search import (
    PAPER_HEAD_COUNTS,
    HeadConfig,
    Objective,
    RecipeResult,
    Recommendation,
    candidate_head_configs,
    evaluate_candidate,
    paper_costs,
    pareto_mask,
    search,
)

__all__ = [
    "PAPER_ASPECT_TABLE",
    "PAPER_HEADS_LAWS",
    "PAPER_HEAD_COUNTS",
    "AspectRow",
    "HeadConfig",
    "HeadsLaw",
    "Objective",
    "PaperShape",
    "PlanOption",
    "RecipeResult",
    "Recommendation",
    "RetrofitPlan",
    "Run",
    "ScalingFit",
    "aspect_ratio",
    "candidate_head_configs",
    "evaluate_candidate",
    "fit_runs",
    "fit_scaling_law",
    "from_scratch_config",
    "load_recommendation",
    "model_shape",
    "non_embedding_params",
    "paper_costs",
    "pareto_mask",
    "plan_retrofit",
    "plot_recipe",
    "reachable_head_configs",
    "read_runs",
    "recommend",
    "recommendation_to_geometry",
    "search",
    "shape_for_params",
    "table_shape",
]
