"""Turn what the user named (path, Hub id, dict, transformers config) into a :class:`ModelShape`.

The closed-form path reads JSON only. A model type without a family entry is read with the
generic field names and accepted only if a meta-device instantiation of the transformers class
has exactly the parameter count the formulas give (that check imports torch and transformers).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..arch import FAMILIES, supported_families
from ..errors import ConfigError, ModelSourceError, UnsupportedFamilyError
from .config_reader import GENERIC_FAMILY, ModelShape, read_config, resolve_family
from .formulas import param_counts


def load_config_dict(
    model: str | Path | Mapping[str, Any] | Any,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
) -> tuple[dict[str, Any], str]:
    """The parsed config and a label for it.

    ``model`` is a local model directory, a ``config.json`` path, a Hub id (only
    ``config.json`` is downloaded), a dict, or a transformers ``PretrainedConfig``.

    Raises:
        ModelSourceError: the path does not exist or the Hub id cannot be resolved.
        ConfigError: the file is not valid JSON or not a JSON object.
    """
    if isinstance(model, Mapping):
        return dict(model), str(model.get("_name_or_path") or model.get("model_type") or "config")
    to_dict = getattr(model, "to_dict", None)
    if callable(to_dict) and not isinstance(model, (str, Path)):
        data = to_dict()
        return data, str(getattr(model, "name_or_path", "") or data.get("model_type", "config"))
    if not isinstance(model, (str, Path)):
        raise ConfigError(
            f"cannot estimate a {type(model).__name__}: give a path, a Hub id, a dict or a "
            "transformers config"
        )
    from ..sources import resolve_config_file

    name = str(model)
    if not Path(name).exists() and (isinstance(model, Path) or name.endswith(".json")):
        raise ModelSourceError(
            f"no such file: {name!r}; give a model directory, a config.json path or a Hub id"
        )
    path = resolve_config_file(name, revision=revision, token=token)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{name!r} is not valid JSON: {err}") from None
    except OSError as err:
        raise ModelSourceError(f"cannot read {name!r}: {err.strerror or err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name!r} must hold a JSON object, got {type(data).__name__}")
    return data, name


def meta_param_count(config: Mapping[str, Any]) -> int:
    """Parameters of the transformers causal-LM class for ``config``, built on the meta device.

    Raises:
        UnsupportedFamilyError: transformers does not know the model type or cannot build it.
    """
    return _meta_instantiate(config)[1]


def _meta_instantiate(config: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """(the transformers-normalized config dict with class defaults filled in, parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    try:
        hf_config = AutoConfig.for_model(str(config["model_type"]), **kwargs)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)
    except Exception as err:  # any failure means we cannot check the family
        raise UnsupportedFamilyError(
            f"model type {config.get('model_type')!r} is not supported (transformers cannot "
            f"build it: {type(err).__name__}); supported: " + ", ".join(supported_families())
        ) from None
    return hf_config.to_dict(), sum(p.numel() for p in model.parameters())


# Config keys of layer kinds the generic reading (uniform attention + MLP) cannot cost: a
# model type without a family entry that has one is refused at once.
NON_GENERIC_KEYS = frozenset(
    {
        "hybrid_override_pattern",  # each key present with a non-empty value
        "layers_block_type",
        "layer_types",
        "attn_layer_indices",
        "attn_layer_period",
        "linear_num_key_heads",
        "mamba_d_state",
        "mamba_n_heads",
        "ssm_state_size",
        "kv_lora_rank",
        "num_experts",
        "num_local_experts",
        "n_routed_experts",
        "sliding_window_pattern",
    }
)


def transformers_knows(model_type: str) -> bool:
    """Whether the installed transformers has a config class for ``model_type``.

    Read from transformers' generated ``models/auto/auto_mappings.py`` as text, without
    importing transformers (or torch), so unknown types are refused in milliseconds. When
    that file cannot be read the answer is True and the meta-device check decides.
    """
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.origin:
        return False
    path = Path(spec.origin).parent / "models" / "auto" / "auto_mappings.py"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return True
    return f'("{model_type}", ' in text


def shape_from_config(config: Mapping[str, Any]) -> tuple[ModelShape, bool]:
    """The model shape and whether it came from the generic, meta-checked fallback.

    A model type without a family entry is read with the generic field names from the
    transformers config (class defaults filled in) and accepted only when its parameter count
    equals the meta-device instantiation's.

    Raises:
        ConfigError: a required field is missing or invalid.
        UnsupportedFamilyError: unknown family whose generic reading cannot be confirmed.
    """
    model_type = config.get("model_type") if isinstance(config, Mapping) else None
    known = model_type in FAMILIES or (
        isinstance(config, Mapping) and isinstance(config.get("text_config"), Mapping)
    )
    if known or not isinstance(model_type, str):
        return read_config(config), False
    try:
        resolve_family(config)  # read as the family its architectures / alias name
    except UnsupportedFamilyError:
        pass
    else:
        return read_config(config), False
    if not transformers_knows(model_type):
        raise UnsupportedFamilyError(
            f"model type {model_type!r} is not supported (transformers does not know it "
            "either); supported: " + ", ".join(supported_families())
        )
    special = sorted(k for k in config if k in NON_GENERIC_KEYS and config[k])
    if special == ["layer_types"] and set(config["layer_types"]) == {"full_attention"}:
        special = []
    if special:
        # the generic field names cannot describe these layers: refuse without the slow check
        raise UnsupportedFamilyError(
            f"model type {model_type!r} is not supported (its {special[0]!r} layers need a "
            "family reader); supported: " + ", ".join(supported_families())
        )
    normalized, expected = _meta_instantiate(config)
    try:
        shape = read_config(normalized, family=GENERIC_FAMILY)
    except ConfigError as err:
        raise UnsupportedFamilyError(
            f"model type {model_type!r} is not supported ({err}); supported: "
            + ", ".join(supported_families())
        ) from None
    if param_counts(shape).total != expected:
        raise UnsupportedFamilyError(
            f"model type {model_type!r} is not supported (its generic reading does not match "
            "the transformers model); supported: " + ", ".join(supported_families())
        )
    return shape, True
