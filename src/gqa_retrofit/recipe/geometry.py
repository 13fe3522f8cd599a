"""From a recommendation to a model geometry (config fields) for training from scratch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .aspect import ffn_size
from .search import Recommendation

#: config.json field <- recommendation key
GEOMETRY_FIELDS = {
    "num_hidden_layers": "layers",
    "hidden_size": "hidden",
    "intermediate_size": "intermediate",
    "num_attention_heads": "heads",
    "num_key_value_heads": "kv_heads",
    "head_dim": "head_dim",
}


def recommendation_to_geometry(
    recommendation: Recommendation | Mapping[str, Any],
) -> dict[str, int]:
    """The config fields (HF Llama-style names) of a recommended model.

    Args:
        recommendation: a :class:`Recommendation` or one item of ``recommend --json`` output
            (``layers``, ``hidden``, ``heads``, ``kv_heads`` required; ``head_dim`` defaults to
            64 and ``intermediate`` to the paper's 8d/3 rounded up to a multiple of 32).

    Returns:
        ``num_hidden_layers``, ``hidden_size``, ``intermediate_size``, ``num_attention_heads``,
        ``num_key_value_heads``, ``head_dim``.

    Raises:
        ConfigError: a required key is missing or a value is not a positive integer, or
            ``heads`` is not divisible by ``kv_heads``.
    """
    item = (
        recommendation.to_dict()
        if isinstance(recommendation, Recommendation)
        else dict(recommendation)
    )
    item.setdefault("head_dim", 64)
    if "hidden" in item:
        item.setdefault("intermediate", ffn_size(int(item["hidden"])))
    geometry = {}
    for field, key in GEOMETRY_FIELDS.items():
        if key not in item:
            raise ConfigError(
                f"recommendation lacks {key!r}: expected an item of `gqa-retrofit recommend "
                "--json` output with layers, hidden, heads and kv_heads"
            )
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"recommendation {key!r} is {value!r}: must be a positive integer")
        geometry[field] = value
    if geometry["num_attention_heads"] % geometry["num_key_value_heads"]:
        raise ConfigError(
            f"recommendation heads {geometry['num_attention_heads']} is not divisible by "
            f"kv_heads {geometry['num_key_value_heads']}"
        )
    return geometry


def load_recommendation(path: str | os.PathLike[str], rank: int = 1) -> dict[str, Any]:
    """Read ``recommend --json`` output (or one item of it) and return the item of ``rank``.

    Raises:
        ConfigError: missing or invalid JSON file, no recommendations, or no such rank.
    """
    name = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recommendation file {name!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"recommendation file {name!r} is not valid JSON: {err}") from None
    if isinstance(data, dict) and "recommendations" in data:
        items = data["recommendations"]
    elif isinstance(data, dict):
        items = [data]
    else:
        items = data
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ConfigError(
            f"recommendation file {name!r} holds no recommendations: expected the output of "
            "`gqa-retrofit recommend --json`"
        )
    if not 1 <= rank <= len(items):
        raise ConfigError(
            f"invalid rank {rank}: {name!r} holds {len(items)} recommendation(s) (1..{len(items)})"
        )
    item: dict[str, Any] = items[rank - 1]
    return item


def from_scratch_config(template: Any, recommendation: Recommendation | Mapping[str, Any]) -> Any:
    """A transformers config of the recommended model, for training from scratch.

    Everything but the geometry comes from ``template`` (family, vocabulary, positions, norms,
    rotary settings); depth, width, FFN size, heads, KV heads and head size come from the
    recommendation. The head geometry goes through :func:`gqa_retrofit.patching.patch_config`,
    so families that cannot express ``n_h·d_h ≠ d`` natively get their decoupled type. The FFN
    size is the paper's SwiGLU width also for families with an ungated MLP.

    Args:
        template: a transformers ``PretrainedConfig`` of a patchable family.
        recommendation: a :class:`Recommendation` or one item of ``recommend --json`` output.

    Raises:
        ConfigError: an invalid recommendation or a geometry the family cannot express.
        UnsupportedFamilyError: the template's family cannot be patched.
    """
    from transformers import AutoConfig

    from ..arch import get_family
    from ..patching.config import patch_config

    geometry = recommendation_to_geometry(recommendation)
    spec = get_family(template.model_type)
    values = template.to_dict()

    def key(options: tuple[str, ...]) -> str:
        return next((k for k in options if k in values), options[0])

    values[key(spec.layers_keys)] = geometry["num_hidden_layers"]
    values[key(spec.hidden_keys)] = geometry["hidden_size"]
    values[key(spec.intermediate_keys)] = geometry["intermediate_size"]
    # one head while resizing, so configs that check hidden % heads accept any width;
    # patch_config then sets the real head geometry
    values[key(spec.heads_keys)] = 1
    for kv_key in spec.kv_heads_keys:
        if kv_key in values:
            values[kv_key] = 1
    if "head_dim" in values:
        values["head_dim"] = geometry["head_dim"]
    if isinstance(values.get("layer_types"), list):
        values.pop("layer_types")  # per-layer list of the old depth: rebuilt by the config
    for stale in ("model_type", "transformers_version", "architectures"):
        values.pop(stale, None)
    try:
        resized = AutoConfig.for_model(template.model_type, **values)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{template.model_type} rejects the recommended shape: {err}".splitlines()[0]
        ) from None
    return patch_config(
        resized,
        heads=geometry["num_attention_heads"],
        kv_heads=geometry["num_key_value_heads"],
        head_dim=geometry["head_dim"],
    )
